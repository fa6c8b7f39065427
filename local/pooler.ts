/**
 * Debian's PgBouncer in transaction mode in front of a local PostgreSQL: the
 * stand-in for Supabase's pooler (Supavisor, port 6543), so that the function
 * is tested and measured through a real transaction pooler. As Supavisor in
 * transaction mode, it gives each transaction whichever server connection is
 * free, keeps no session state between them, and does not pass on startup
 * parameters it does not track (`statement_timeout` is dropped, as Supavisor
 * drops it). Any database name is routed to the server. Trust authentication:
 * for throwaway local servers only.
 *
 * @module
 */
import postgres from "postgres";
import { freePort, waitForPort } from "./net.ts";

/** A running pooler. */
export interface Pooler extends AsyncDisposable {
  port: number;
  /** `url` (a server connection string) pointed at the pooler instead. */
  pooled(url: string): string;
  /** Transactions the pooler has passed to the server so far (its admin console's `SHOW STATS`). */
  transactions(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts PgBouncer on a free port in front of the PostgreSQL server on `serverPort` (127.0.0.1). */
export async function startPooler(serverPort: number, options: { poolSize?: number } = {}): Promise<Pooler> {
  const binary = await findPgBouncer();
  const dir = await Deno.makeTempDir({ prefix: "twinnoverse-pgbouncer-" });
  const port = freePort();
  const ini = `${dir}/pgbouncer.ini`;
  await Deno.writeTextFile(`${dir}/userlist.txt`, `"postgres" ""\n`);
  await Deno.writeTextFile(
    ini,
    [
      "[databases]",
      `* = host=127.0.0.1 port=${serverPort}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${dir}/userlist.txt`,
      "pool_mode = transaction",
      "admin_users = postgres",
      "max_client_conn = 2000",
      `default_pool_size = ${options.poolSize ?? 20}`,
      // postgres.js sends these at startup; a transaction pooler cannot keep them per client.
      "ignore_startup_parameters = statement_timeout,extra_float_digits,options",
      `logfile = ${dir}/pgbouncer.log`,
      "",
    ].join("\n"),
  );
  // PgBouncer refuses to run as root: run it as postgres, as the server.
  const asRoot = Deno.uid() === 0;
  if (asRoot) await new Deno.Command("chown", { args: ["-R", "postgres:postgres", dir] }).output();
  const child = new Deno.Command(asRoot ? "runuser" : binary, {
    args: asRoot ? ["-u", "postgres", "--", binary, ini] : [ini],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  try {
    await waitForPort(port);
  } catch {
    child.kill("SIGTERM");
    throw new Error(`Cannot start PgBouncer: ${(await stderr).slice(-1000)}`);
  }

  async function stop() {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
    await stderr;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return {
    port,
    pooled(url) {
      const u = new URL(url);
      u.port = String(port);
      return u.toString();
    },
    async transactions() {
      const admin = postgres(`postgres://postgres@127.0.0.1:${port}/pgbouncer`, {
        max: 1,
        onnotice: () => {},
        fetch_types: false, // the admin console speaks only the simple query protocol
      });
      try {
        const rows = await admin.unsafe("show stats").simple();
        return rows.reduce((sum, row) => sum + Number(row.total_xact_count ?? 0), 0);
      } finally {
        await admin.end();
      }
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

async function findPgBouncer(): Promise<string> {
  for (const path of ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]) {
    try {
      await Deno.stat(path);
      return path;
    } catch { /* next */ }
  }
  throw new Error("Cannot start PgBouncer: not installed (Debian: apt-get install pgbouncer)");
}
