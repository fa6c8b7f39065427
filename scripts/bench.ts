/**
 * `deno task bench`: the endpoint side by side with pgbench calling the same
 * ingest_write(), on one durable PostgreSQL, printed and saved as JSON.
 *
 * 1. Starts PostgreSQL with default durability (fsync, synchronous_commit on),
 *    applies the fixture and migrations, seeds DATASOURCES datasources with the
 *    documentation's three widgets and a key each.
 * 2. Serves the function as in production (index.ts, postgres store).
 * 3. For each concurrency: wrk drives the documentation's combined payload
 *    over all keys; then pgbench runs `select ingest_write(...)` with the same
 *    payload and spread, one call per transaction (the baseline).
 * 4. Checks that every 200 is in datasource_readings.
 *
 * Options: --duration=15 --connections=16,64 --datasources=100 --warmup=5
 */
import postgres from "postgres";
import { startPostgres } from "./lib/postgres_server.ts";
import { applyMigrations, applyPlatformFixture } from "./lib/migrate.ts";
import { createApiKey, createDatasource, createWorkspace } from "./lib/provisioning.ts";
import { freePort, waitForPort } from "./lib/net.ts";

const args = Object.fromEntries(
  Deno.args.filter((a) => a.startsWith("--")).map((a) => a.slice(2).split("=", 2) as [string, string]),
);
const DURATION_S = Number(args.duration ?? 15);
const CONNECTIONS = (args.connections ?? "16,64").split(",").map(Number);
const DATASOURCES = Number(args.datasources ?? 100);
const WARMUP_S = Number(args.warmup ?? 5);
const ROOT = new URL("../", import.meta.url).pathname;
const OUT_DIR = `${ROOT}.bench/`;

/** The documentation's combined payload. */
const PAYLOAD = JSON.stringify({
  temperature: 42.5,
  motor_stats: { rpm: 1500, vibration: 0.75 },
  production_output: { machines: ["Machine A", "Machine B", "Machine C"], units_per_hour: [112, 124, 98] },
});

interface Figures {
  requests_per_s: number;
  p50_ms: number;
  p99_ms: number;
  non_2xx: number;
  ok: number;
  cpu_function_s?: number;
  cpu_postgres_s?: number;
}

await Deno.mkdir(OUT_DIR, { recursive: true });
for (const tool of ["wrk", "pgbench"]) await requireTool(tool);

// Durable (fsync, synchronous_commit, full_page_writes on); checkpoints spaced as on a tuned server.
const server = await startPostgres({
  durable: true,
  settings: { max_connections: "300", shared_buffers: "256MB", max_wal_size: "8GB", checkpoint_timeout: "30min" },
});
let fn: Deno.ChildProcess | undefined;
try {
  const sql = postgres(server.url, { max: 4, onnotice: () => {} });
  await applyPlatformFixture(sql);
  await applyMigrations(sql);
  const keys = await seed(sql, DATASOURCES);
  progress(`seeded ${DATASOURCES} datasources with 3 widgets and a key each`);

  const keysFile = `${OUT_DIR}keys.lua`;
  await Deno.writeTextFile(keysFile, `return {\n${keys.map((k) => `  "${k.apiKey}",`).join("\n")}\n}\n`);
  const pgbenchFile = `${OUT_DIR}ingest.sql`;
  await Deno.writeTextFile(
    pgbenchFile,
    `\\set k random(1, ${DATASOURCES})\n` +
      `select public.ingest_write(b.datasource_id, b.key_id, '${PAYLOAD}'::jsonb) from bench.keys b where b.k = :k;\n`,
  );

  const port = freePort();
  fn = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "supabase/functions/ingest-data/index.ts"],
    cwd: ROOT,
    env: { ...functionEnv(), DATABASE_URL: server.url, PORT: String(port) },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const url = `http://127.0.0.1:${port}/functions/v1/ingest-data`;
  await waitForPort(port);
  const wrkEnv = { BENCH_KEYS_FILE: keysFile, BENCH_BODY: PAYLOAD };

  progress(`warming up for ${WARMUP_S}s`);
  await wrk(url, { connections: 16, durationS: WARMUP_S, env: wrkEnv });

  const results: Record<string, { endpoint: Figures; baseline: Figures; ratio: number; lost: number }> = {};
  for (const connections of CONNECTIONS) {
    // Each phase starts from a vacuumed database, so that no phase pays for
    // the autovacuum of the rows an earlier phase wrote.
    await vacuum(sql);
    progress(`endpoint: wrk, ${connections} connections, ${DURATION_S}s`);
    const before = await readingsCount(sql);
    const cpuBefore = await cpuSeconds(fn.pid, server.dataDir);
    const endpoint = await wrk(url, { connections, durationS: DURATION_S, env: wrkEnv });
    const cpuAfter = await cpuSeconds(fn.pid, server.dataDir);
    await new Promise((r) => setTimeout(r, 500)); // let in-flight requests finish
    const stored = (await readingsCount(sql) - before) / 3;
    endpoint.cpu_function_s = round(cpuAfter.fn - cpuBefore.fn);
    endpoint.cpu_postgres_s = round(cpuAfter.pg - cpuBefore.pg);
    const lost = Math.max(0, endpoint.ok - stored);

    await vacuum(sql);
    progress(`baseline: pgbench ingest_write(), ${connections} connections, ${DURATION_S}s`);
    const baseline = await pgbench(server.url, { connections, durationS: DURATION_S, script: pgbenchFile });
    results[String(connections)] = {
      endpoint,
      baseline,
      ratio: round(endpoint.requests_per_s / baseline.requests_per_s),
      lost,
    };
  }
  await sql.end();

  const machine = `${navigator.hardwareConcurrency} cores, ${Deno.build.os}, Deno ${Deno.version.deno}`;
  const report = { machine, duration_s: DURATION_S, datasources: DATASOURCES, results, at: new Date().toISOString() };
  await Deno.writeTextFile(`${OUT_DIR}results.json`, JSON.stringify(report, null, 2));
  printReport(report);
  const broken = Object.values(results).some((r) => r.lost > 0);
  if (broken) {
    console.error("Lost writes: some 200 responses are not in datasource_readings");
    Deno.exitCode = 1;
  }
} finally {
  fn?.kill("SIGTERM");
  await fn?.status;
  await server.stop();
}

function printReport(
  report: {
    machine: string;
    results: Record<string, { endpoint: Figures; baseline: Figures; ratio: number; lost: number }>;
  },
) {
  console.log(`\nMachine: ${report.machine}; PostgreSQL with fsync and synchronous_commit on\n`);
  console.log(
    "| connections | endpoint req/s | p50 ms | p99 ms | non-2xx | lost | pgbench ingest_write() tx/s | p50 ms | p99 ms | endpoint/baseline | CPU s function / postgres |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const [c, r] of Object.entries(report.results)) {
    const e = r.endpoint, b = r.baseline;
    console.log(
      `| ${c} | ${e.requests_per_s} | ${e.p50_ms} | ${e.p99_ms} | ${e.non_2xx} | ${r.lost} | ${b.requests_per_s} | ${b.p50_ms} | ${b.p99_ms} | ${r.ratio} | ${e.cpu_function_s} / ${e.cpu_postgres_s} |`,
    );
  }
  console.log(`\nFigures saved to .bench/results.json`);
}

async function seed(
  sql: postgres.Sql,
  count: number,
): Promise<{ datasourceId: string; keyId: string; apiKey: string }[]> {
  const workspaceId = await createWorkspace(sql, "Bench");
  const keys = [];
  for (let i = 0; i < count; i++) {
    const datasourceId = await createDatasource(sql, workspaceId, { name: `Line ${i + 1}` });
    const { keyId, apiKey } = await createApiKey(sql, datasourceId, { name: "bench" });
    keys.push({ datasourceId, keyId, apiKey });
  }
  await sql`create schema bench`;
  await sql`create table bench.keys (k int primary key, datasource_id uuid not null, key_id uuid not null)`;
  await sql`insert into bench.keys ${
    sql(keys.map((k, i) => ({ k: i + 1, datasource_id: k.datasourceId, key_id: k.keyId })))
  }`;
  return keys;
}

async function wrk(
  url: string,
  options: { connections: number; durationS: number; env: Record<string, string> },
): Promise<Figures> {
  const out = await run("wrk", [
    "-t2",
    `-c${options.connections}`,
    `-d${options.durationS}s`,
    "--latency",
    "--timeout",
    "10s",
    "-s",
    `${ROOT}scripts/bench/ingest.lua`,
    url,
  ], options.env);
  const total = Number(out.match(/(\d+) requests in/)?.[1] ?? 0);
  const non2xx = Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  const errors = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const socketErrors = errors ? errors.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0;
  return {
    requests_per_s: round(Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? 0)),
    p50_ms: duration(out.match(/50%\s+([\d.]+\w+)/)?.[1]),
    p99_ms: duration(out.match(/99%\s+([\d.]+\w+)/)?.[1]),
    non_2xx: non2xx + socketErrors,
    ok: total - non2xx,
  };
}

async function pgbench(
  url: string,
  options: { connections: number; durationS: number; script: string },
): Promise<Figures> {
  const u = new URL(url);
  const logDir = await Deno.makeTempDir({ prefix: "pgbench-log-" });
  const out = await run("pgbench", [
    "-n",
    "-M",
    "prepared",
    "-h",
    u.hostname,
    "-p",
    u.port,
    "-U",
    "postgres",
    "-c",
    String(options.connections),
    "-j",
    "2",
    "-T",
    String(options.durationS),
    "-f",
    options.script,
    "-l",
    `--log-prefix=${logDir}/log`,
    "postgres",
  ]);
  // Per-transaction log lines: client_id transaction_no latency_us script_no time epoch_us.
  const latencies: number[] = [];
  for (const entry of Deno.readDirSync(logDir)) {
    for (const line of Deno.readTextFileSync(`${logDir}/${entry.name}`).split("\n")) {
      const latency = Number(line.split(" ")[2]);
      if (Number.isFinite(latency) && line) latencies.push(latency / 1000);
    }
  }
  await Deno.remove(logDir, { recursive: true });
  latencies.sort((a, b) => a - b);
  const failed = Number(out.match(/number of failed transactions: (\d+)/)?.[1] ?? 0);
  return {
    requests_per_s: round(Number(out.match(/tps = ([\d.]+)/)?.[1] ?? 0)),
    p50_ms: round(latencies[Math.floor(latencies.length * 0.5)] ?? 0),
    p99_ms: round(latencies[Math.floor(latencies.length * 0.99)] ?? 0),
    non_2xx: failed,
    ok: latencies.length - failed,
  };
}

async function vacuum(sql: postgres.Sql): Promise<void> {
  await sql`vacuum (analyze) public.datasource_values, public.datasource_readings, public.datasources,
    public.datasource_api_keys, realtime.messages`;
  await sql`checkpoint`;
}

async function readingsCount(sql: postgres.Sql): Promise<number> {
  const [row] = await sql`select count(*)::int as n from public.datasource_readings`;
  return row!.n;
}

/** CPU seconds used so far by the function process and by every PostgreSQL process of the server. */
async function cpuSeconds(fnPid: number, dataDir: string): Promise<{ fn: number; pg: number }> {
  const ticks = 100; // USER_HZ on Linux
  const stat = (pid: number | string) => {
    try {
      const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).replace(/^.*\) /, "").split(" ");
      // utime, stime, cutime, cstime are fields 14-17 (here 11-14 after dropping pid and comm).
      return fields.slice(11, 15).map(Number).reduce((a, b) => a + b, 0) / ticks;
    } catch {
      return 0;
    }
  };
  const postmaster = Number((await Deno.readTextFile(`${dataDir}/data/postmaster.pid`)).split("\n")[0]);
  let pg = stat(postmaster);
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const ppid = Number(Deno.readTextFileSync(`/proc/${entry.name}/stat`).replace(/^.*\) /, "").split(" ")[1]);
      if (ppid === postmaster) pg += stat(entry.name);
    } catch {
      // The process ended meanwhile.
    }
  }
  return { fn: stat(fnPid), pg };
}

async function run(cmd: string, cmdArgs: string[], env: Record<string, string> = {}): Promise<string> {
  const out = await new Deno.Command(cmd, { args: cmdArgs, env, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} failed:\n${text}`);
  return text;
}

async function requireTool(tool: string): Promise<void> {
  try {
    await new Deno.Command(tool, { args: ["--version"], stdout: "null", stderr: "null" }).output();
  } catch {
    throw new Error(
      `Cannot run the benchmark: ${tool} is not installed (Debian: apt-get install ${
        tool === "wrk" ? "wrk" : "postgresql-contrib"
      })`,
    );
  }
}

function duration(text: string | undefined): number {
  const match = text?.match(/^([\d.]+)(us|ms|s)$/);
  if (!match) return NaN;
  const value = Number(match[1]);
  return round(match[2] === "us" ? value / 1000 : match[2] === "s" ? value * 1000 : value);
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** INGEST_* settings of this shell go to the function, to compare configurations. */
function functionEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(Deno.env.toObject()).filter(([name]) => name.startsWith("INGEST_")));
}

function progress(message: string): void {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);
}
