/**
 * A throwaway PostgreSQL server started from the system's binaries in a
 * temporary folder on a free port, for tests and benchmarks.
 *
 * @module
 */
import { freePort } from "./net.ts";

/** A running throwaway server. `stop()` shuts it down and deletes its files. */
export interface PostgresServer {
  /** Superuser connection string, e.g. `postgres://postgres@127.0.0.1:5433/postgres`. */
  url: string;
  port: number;
  dataDir: string;
  /** Stops the server; with `keepFiles` the data folder stays for a later `start()`. */
  stop(options?: { keepFiles?: boolean }): Promise<void>;
  /** Starts the server again after `stop({ keepFiles: true })`. */
  start(): Promise<void>;
}

/** Options of {@linkcode startPostgres}. */
export interface StartPostgresOptions {
  /** Keep PostgreSQL's default durability (fsync, synchronous_commit). Off by default: tests do not need it. */
  durable?: boolean;
  /** Extra `-c name=value` settings. */
  settings?: Record<string, string>;
}

/** Finds the directory of the newest installed PostgreSQL server binaries. */
export async function findPostgresBinDir(): Promise<string> {
  const candidates: string[] = [];
  try {
    const out = await new Deno.Command("pg_config", { args: ["--bindir"], stdout: "piped", stderr: "null" })
      .output();
    if (out.success) candidates.push(new TextDecoder().decode(out.stdout).trim());
  } catch {
    // pg_config is not installed; look in the usual places below.
  }
  try {
    const versions = [...Deno.readDirSync("/usr/lib/postgresql")].map((e) => e.name)
      .filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => `/usr/lib/postgresql/${v}/bin`));
  } catch {
    // Not a Debian layout.
  }
  for (const dir of candidates) {
    if (await exists(`${dir}/initdb`) && await exists(`${dir}/postgres`)) return dir;
  }
  throw new Error(
    "Cannot start PostgreSQL: no server binaries found (looked for initdb via pg_config and in /usr/lib/postgresql/*/bin). " +
      "Install them (Debian: apt-get install postgresql-15) or set DATABASE_URL to a server you have.",
  );
}

/** Starts a throwaway PostgreSQL server with `wal_level=logical` on a free port. */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const binDir = await findPostgresBinDir();
  const asPostgres = await runAsPostgresPrefix();
  const dataDir = await Deno.makeTempDir({ prefix: "twinnoverse-pg-" });
  if (asPostgres.length > 0) await run(["chown", "-R", "postgres:postgres", dataDir], []);
  const pgData = `${dataDir}/data`;
  await run(
    [`${binDir}/initdb`, "-D", pgData, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
    asPostgres,
  );

  const port = freePort();
  const settings: Record<string, string> = {
    listen_addresses: "127.0.0.1",
    port: String(port),
    unix_socket_directories: dataDir,
    wal_level: "logical",
    max_replication_slots: "20",
    max_wal_senders: "20",
    max_connections: "200",
    ...(options.durable ? {} : { fsync: "off", synchronous_commit: "off", full_page_writes: "off" }),
    ...options.settings,
  };
  const pgOptions = Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`).join(" ");
  const logFile = `${dataDir}/server.log`;

  async function start(): Promise<void> {
    try {
      await run(
        [`${binDir}/pg_ctl`, "-D", pgData, "-o", pgOptions, "-l", logFile, "-w", "-t", "60", "start"],
        asPostgres,
      );
    } catch (error) {
      const log = await Deno.readTextFile(logFile).catch(() => "");
      throw new Error(`Cannot start PostgreSQL: ${(error as Error).message}\n${log.slice(-2000)}`);
    }
  }
  async function stop(stopOptions: { keepFiles?: boolean } = {}): Promise<void> {
    await run([`${binDir}/pg_ctl`, "-D", pgData, "-m", "fast", "-w", "stop"], asPostgres).catch(() => {});
    if (!stopOptions.keepFiles) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }

  await start();
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, port, dataDir, stop, start };
}

/** PostgreSQL refuses to run as root: as root, run its binaries as `postgres`. */
async function runAsPostgresPrefix(): Promise<string[]> {
  if (Deno.uid() !== 0) return [];
  const user = await new Deno.Command("id", { args: ["-u", "postgres"], stdout: "null", stderr: "null" }).output();
  if (!user.success) {
    throw new Error(
      "Cannot start PostgreSQL as root: there is no `postgres` user to run it as (create one, or run as another user).",
    );
  }
  return ["runuser", "-u", "postgres", "--"];
}

async function run(command: string[], prefix: string[]): Promise<void> {
  const [cmd, ...args] = [...prefix, ...command];
  const out = await new Deno.Command(cmd!, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    const stderr = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`${command[0]} failed: ${stderr}`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
