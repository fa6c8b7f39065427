/**
 * PGlite (PostgreSQL compiled to WebAssembly) served on a local TCP port with
 * pglite-socket, so the function talks to it exactly as to any PostgreSQL.
 *
 * @module
 */
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

/** A running embedded database. */
export interface EmbeddedPostgres extends AsyncDisposable {
  url: string;
  stop(): Promise<void>;
}

/** Opens (or creates) the PGlite database in `dataDir` and serves it on `port` (0: any free port). */
export async function startEmbeddedPostgres(
  dataDir: string,
  options: { port?: number } = {},
): Promise<EmbeddedPostgres> {
  await Deno.mkdir(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir);
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: options.port ?? 0, maxConnections: 8 });
  await server.start();
  const address = server.getServerConn();
  const port = Number(address.split(":").at(-1));
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  async function stop() {
    await server.stop();
    await db.close();
  }
  return { url, stop, [Symbol.asyncDispose]: stop };
}
