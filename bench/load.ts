/**
 * What the benchmark, fault and soak scripts share: a durable PostgreSQL with
 * seeded datasources, the function served as deployed, wrk, and /proc readings.
 *
 * @module
 */
import { parseArgs } from "node:util";
import postgres from "postgres";
import { applyMigrations, applyPlatformFixture } from "../local/migrate.ts";
import { freePort, waitForPort } from "../local/net.ts";
import { type PostgresServer, startPostgres } from "../local/postgres_server.ts";
import { createApiKey, createDatasource, createWorkspace } from "../local/provisioning.ts";

const ROOT = new URL("../", import.meta.url).pathname;

type OptionValue = number | string | boolean;
type Options<T> = { [K in keyof T]: T[K] extends number ? number : T[K] extends boolean ? boolean : string };

/**
 * The script's `--name=value` options (flags for boolean defaults), each
 * defaulting to its entry in `defaults`; an unknown option, or a number that
 * does not read as one, is an error.
 */
export function scriptOptions<T extends Record<string, OptionValue>>(defaults: T): Options<T> {
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: Object.fromEntries(
      Object.entries(defaults).map((
        [name, value],
      ) => [name, { type: typeof value === "boolean" ? "boolean" : "string" }]),
    ) as Record<string, { type: "boolean" | "string" }>,
  });
  return Object.fromEntries(
    Object.entries(defaults).map(([name, fallback]) => {
      const given = values[name];
      if (given === undefined) return [name, fallback];
      if (typeof fallback !== "number") return [name, given];
      const number = Number(given);
      if (given === "" || !Number.isFinite(number)) {
        throw new Error(`Cannot read --${name}=${given}: it must be a number`);
      }
      return [name, number];
    }),
  ) as Options<T>;
}

/** The documentation's combined payload. */
export const COMBINED_PAYLOAD = JSON.stringify({
  temperature: 42.5,
  motor_stats: { rpm: 1500, vibration: 0.75 },
  production_output: { machines: ["Machine A", "Machine B", "Machine C"], units_per_hour: [112, 124, 98] },
});

/** A seeded datasource's ids and plaintext key. */
export interface SeededKey {
  datasourceId: string;
  keyId: string;
  apiKey: string;
}

/**
 * PostgreSQL with default durability (fsync, synchronous_commit, full_page_writes
 * on), checkpoints spaced as on a tuned server, migrated, its WAL files warm;
 * `extraSettings` are added to its settings.
 */
export async function startDurablePostgres(
  extraSettings: Record<string, string> = {},
): Promise<{ server: PostgresServer; sql: postgres.Sql }> {
  const server = await startPostgres({
    durable: true,
    settings: {
      max_connections: "300",
      shared_buffers: "256MB",
      max_wal_size: "8GB",
      min_wal_size: "2GB",
      checkpoint_timeout: "30min",
      ...extraSettings,
    },
  });
  const sql = postgres(server.url, { max: 4, onnotice: () => {} });
  await applyPlatformFixture(sql);
  await applyMigrations(sql);
  // The fixture's notify trigger feeds the local Realtime stand-in (a pg_notify per message, which serializes
  // commits); Supabase has no such trigger, and nothing listens here. bench:realtime measures it separately.
  await sql`alter table realtime.messages disable trigger stand_in_notify_message`;
  await warmWalFiles(sql, 64);
  return { server, sql };
}

/**
 * A server that has been running reuses its 16 MB WAL files (recycled at each
 * checkpoint); a fresh one creates and zero-fills a new file every second or so
 * at these rates, and the commit that needs it waits. Creates `files` of them
 * and checkpoints, so that they are recycled, as in steady state.
 */
async function warmWalFiles(sql: postgres.Sql, files: number): Promise<void> {
  for (let i = 0; i < files; i++) {
    await sql`select pg_logical_emit_message(false, 'bench', 'warm-up')`;
    await sql`select pg_switch_wal()`;
  }
  await sql`checkpoint`;
}

/** Creates `count` datasources with the documentation's widgets and a key each. */
export async function seedDatasources(sql: postgres.Sql, count: number): Promise<SeededKey[]> {
  const workspaceId = await createWorkspace(sql, "Load");
  const keys: SeededKey[] = [];
  for (let i = 0; i < count; i++) {
    const datasourceId = await createDatasource(sql, workspaceId, { name: `Line ${i + 1}` });
    keys.push({ datasourceId, ...await createApiKey(sql, datasourceId, { name: "load" }) });
  }
  return keys;
}

/**
 * The function served from index.ts as deployed, or with `parallel` one copy
 * per core under `deno serve --parallel`; INGEST_* settings of this shell are passed on.
 */
export async function startFunction(
  databaseUrl: string,
  options: { parallel?: boolean; env?: Record<string, string>; denoFlags?: string[] } = {},
): Promise<{ url: string; process: Deno.ChildProcess }> {
  const port = freePort();
  const ingestEnv = Object.fromEntries(Object.entries(Deno.env.toObject()).filter(([k]) => k.startsWith("INGEST_")));
  const args = options.parallel
    ? ["serve", "--parallel", "--allow-net", "--allow-env", "--port", String(port), "bench/parallel_entry.ts"]
    : ["run", ...(options.denoFlags ?? []), "--allow-net", "--allow-env", "supabase/functions/ingest-data/index.ts"];
  const process = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { ...ingestEnv, ...options.env, DATABASE_URL: databaseUrl, PORT: String(port) },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  await waitForPort(port);
  return { url: `http://127.0.0.1:${port}/functions/v1/ingest-data`, process };
}

/** What one wrk run measured. */
export interface WrkFigures {
  requests_per_s: number;
  p50_ms: number;
  p99_ms: number;
  /** Non-2xx responses plus socket errors. */
  non_2xx: number;
  /** 2xx responses. */
  ok: number;
}

/** Runs wrk with the combined payload spread over `keys`. */
export async function wrk(
  url: string,
  options: { keys: SeededKey[]; connections: number; durationS: number; script?: string; env?: Record<string, string> },
): Promise<WrkFigures> {
  const keysFile = await Deno.makeTempFile({ suffix: ".lua" });
  await Deno.writeTextFile(keysFile, `return {\n${options.keys.map((k) => `  "${k.apiKey}",`).join("\n")}\n}\n`);
  const out = await run("wrk", [
    `-t${Math.min(2, options.connections)}`,
    `-c${options.connections}`,
    `-d${options.durationS}s`,
    "--latency",
    "--timeout",
    "10s",
    "-s",
    `${ROOT}bench/${options.script ?? "ingest.lua"}`,
    url,
  ], { BENCH_KEYS_FILE: keysFile, BENCH_BODY: COMBINED_PAYLOAD, ...options.env });
  await Deno.remove(keysFile);
  const total = Number(out.match(/(\d+) requests in/)?.[1] ?? 0);
  const non2xx = Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  const errors = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const socketErrors = errors ? errors.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0;
  return {
    requests_per_s: round(Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? 0)),
    p50_ms: milliseconds(out.match(/50%\s+([\d.]+\w+)/)?.[1]),
    p99_ms: milliseconds(out.match(/99%\s+([\d.]+\w+)/)?.[1]),
    non_2xx: non2xx + socketErrors,
    ok: total - non2xx,
  };
}

/** Rows in datasource_readings. */
export async function readingsCount(sql: postgres.Sql): Promise<number> {
  const [row] = await sql`select count(*)::int as n from public.datasource_readings`;
  return row!.n;
}

/** Resident memory of a process, in MiB. */
export function residentMiB(pid: number): number {
  const kib = Number(Deno.readTextFileSync(`/proc/${pid}/status`).match(/VmRSS:\s+(\d+) kB/)?.[1] ?? 0);
  return round(kib / 1024);
}

/** CPU seconds used so far by a process and its reaped children. */
export function cpuSeconds(pid: number): number {
  try {
    const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).replace(/^.*\) /, "").split(" ");
    // utime, stime, cutime, cstime: fields 14-17 of stat, 11-14 once pid and comm are dropped.
    return fields.slice(11, 15).map(Number).reduce((a, b) => a + b, 0) / 100;
  } catch {
    return 0;
  }
}

/** CPU seconds used so far by the whole machine, all cores (user, system, interrupts). */
export function machineCpuSeconds(): number {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0] ?? "";
  // cpu user nice system idle iowait irq softirq steal ...
  const [user, nice, system, , , irq, softirq, steal] = line.split(/\s+/).slice(1).map(Number);
  return [user, nice, system, irq, softirq, steal].reduce((sum: number, ticks) => sum + (ticks ?? 0), 0) / 100;
}

/** CPU seconds used so far by every process of the PostgreSQL server in `dataDir`. */
export function postgresCpuSeconds(dataDir: string): number {
  const postmaster = Number(Deno.readTextFileSync(`${dataDir}/data/postmaster.pid`).split("\n")[0]);
  let total = cpuSeconds(postmaster);
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const ppid = Number(Deno.readTextFileSync(`/proc/${entry.name}/stat`).replace(/^.*\) /, "").split(" ")[1]);
      if (ppid === postmaster) total += cpuSeconds(Number(entry.name));
    } catch {
      // The process ended meanwhile.
    }
  }
  return total;
}

/** Runs a command and returns its output; throws with the output when it fails. */
export async function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} failed:\n${text}`);
  return text;
}

/** Throws a clear error when a command is not installed. */
export async function requireTool(tool: string, debianPackage: string): Promise<void> {
  try {
    await new Deno.Command(tool, { args: ["--version"], stdout: "null", stderr: "null" }).output();
  } catch {
    throw new Error(`${tool} is not installed (Debian: apt-get install ${debianPackage})`);
  }
}

/** A progress line on stderr. */
export function progress(script: string, message: string): void {
  console.error(`[${script} ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

/** Rounds to two decimals. */
export function round(n: number): number {
  return Math.round(n * 100) / 100;
}

function milliseconds(text: string | undefined): number {
  const match = text?.match(/^([\d.]+)(us|ms|s)$/);
  if (!match) return NaN;
  const value = Number(match[1]);
  return round(match[2] === "us" ? value / 1000 : match[2] === "s" ? value * 1000 : value);
}
