/**
 * `deno task bench:breakdown`: where a request's PostgreSQL time goes. One
 * function process on a durable PostgreSQL with pg_stat_statements (every
 * nested statement) and track_functions, wrk for --duration seconds per
 * connection count, then per stored request: CPU of PostgreSQL and of the
 * function, WAL bytes, records and full-page images, and each statement and
 * function's time (nested statements are inside their caller's time).
 *
 * Options: --duration=10 --connections=64,1 --datasources=100 --warmup=3 --top=14
 *          --profile (the function under `perf record` with V8's perf map: its hottest symbols, needs linux-perf)
 * INGEST_* settings of this shell reach the function (INGEST_RATE_LIMIT_PER_SECOND=0 turns limits off).
 */
import {
  cpuSeconds,
  postgresCpuSeconds,
  progress,
  readingsCount,
  requireTool,
  round,
  scriptOptions,
  seedDatasources,
  type SeededKey,
  startDurablePostgres,
  startFunction,
  wrk,
} from "./load.ts";

const {
  duration: DURATION_S,
  connections: CONNECTION_LIST,
  datasources: DATASOURCES,
  warmup: WARMUP_S,
  top: TOP,
  profile: PROFILE,
} = scriptOptions({ duration: 10, connections: "64,1", datasources: 100, warmup: 3, top: 14, profile: false });

await requireTool("wrk", "wrk");
const { server, sql } = await startDurablePostgres({
  shared_preload_libraries: "pg_stat_statements",
  "pg_stat_statements.track": "all",
  "pg_stat_statements.track_utility": "off",
  track_functions: "all",
});
let fn: Deno.ChildProcess | undefined;
try {
  await sql`create extension pg_stat_statements`;
  const keys = await seedDatasources(sql, DATASOURCES);
  const started = await startFunction(server.url, { denoFlags: PROFILE ? ["--v8-flags=--perf-basic-prof"] : [] });
  fn = started.process;
  for (const connections of CONNECTION_LIST.split(",").map(Number)) {
    await phase(started.url, started.process.pid, keys, connections);
  }
} finally {
  fn?.kill("SIGTERM");
  await fn?.status;
  await sql.end();
  await server.stop();
}

async function phase(url: string, pid: number, keys: SeededKey[], connections: number): Promise<void> {
  progress("breakdown", `${connections} connections: ${WARMUP_S}s warm-up, then ${DURATION_S}s measured`);
  await wrk(url, { keys, connections, durationS: WARMUP_S });
  await sql`vacuum analyze`;
  await sql`select pg_stat_statements_reset(), pg_stat_reset(), pg_stat_reset_shared('wal')`;
  const rowsBefore = await readingsCount(sql);
  const cpuBefore = { pg: postgresCpuSeconds(server.dataDir), fn: cpuSeconds(pid) };
  const perf = PROFILE ? startPerf(pid) : undefined;
  const figures = await wrk(url, { keys, connections, durationS: DURATION_S });
  const cpu = { pg: postgresCpuSeconds(server.dataDir) - cpuBefore.pg, fn: cpuSeconds(pid) - cpuBefore.fn };
  const stored = (await readingsCount(sql) - rowsBefore) / 3;
  const perRequest = (n: number) => round(n / figures.ok);
  const [wal] = await sql`select wal_records, wal_fpi, wal_bytes::float8 as wal_bytes from pg_stat_wal`;
  console.log(
    `\n## ${connections} connections: ${figures.requests_per_s} req/s, ${figures.ok} stored (${stored} by rows)\n`,
  );
  console.log("| per request | value |\n| --- | ---: |");
  console.log(`| PostgreSQL CPU µs | ${perRequest(cpu.pg * 1e6)} |`);
  console.log(`| function CPU µs | ${perRequest(cpu.fn * 1e6)} |`);
  console.log(`| WAL bytes | ${perRequest(wal!.wal_bytes)} |`);
  console.log(`| WAL records | ${perRequest(Number(wal!.wal_records))} |`);
  console.log(`| WAL full-page images | ${perRequest(Number(wal!.wal_fpi))} |`);
  await printStatements(figures.ok);
  await printFunctions(figures.ok);
  if (perf) await printProfile(perf);
}

/** `perf record` of the function's process, with call graphs, until stopped. */
function startPerf(pid: number): { process: Deno.ChildProcess; file: string } {
  const file = Deno.makeTempFileSync({ suffix: ".perf.data" });
  const process = new Deno.Command("perf", {
    args: ["record", "-F", "999", "-g", "-p", String(pid), "-o", file],
    stdout: "null",
    stderr: "null",
  }).spawn();
  return { process, file };
}

/** The function's hottest symbols (self time), from the V8 perf map. */
async function printProfile(perf: { process: Deno.ChildProcess; file: string }): Promise<void> {
  perf.process.kill("SIGINT");
  await perf.process.status;
  const report = await new Deno.Command("perf", {
    args: [
      "report",
      "-i",
      perf.file,
      "--no-children",
      "--sort",
      "dso,symbol",
      "--stdio",
      "--percent-limit",
      "1.5",
      "-g",
      "none",
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  const byDso = await new Deno.Command("perf", {
    args: ["report", "-i", perf.file, "--no-children", "--sort", "dso", "--stdio", "-g", "none"],
    stdout: "piped",
    stderr: "null",
  }).output();
  console.log("\n| function process: self % | where |\n| ---: | --- |");
  for (const line of new TextDecoder().decode(byDso.stdout).split("\n").filter((l) => /^\s+\d/.test(l)).slice(0, 8)) {
    const [, percent, dso] = line.match(/^\s+([\d.]+%)\s+(\S+)/) ?? [];
    if (percent) console.log(`| ${percent} | ${dso} |`);
  }
  const lines = new TextDecoder().decode(report.stdout).split("\n").filter((l) => /^\s+\d/.test(l));
  console.log("\n| function process: self % | where | symbol |\n| ---: | --- | --- |");
  for (const line of lines.slice(0, TOP * 2)) {
    const [, percent, dso, symbol] = line.match(/^\s+([\d.]+%)\s+(\S+)\s+\[.\]\s+(.*)$/) ?? [];
    if (percent) console.log(`| ${percent} | ${dso} | ${symbol!.slice(0, 100).replaceAll("|", "\\|")} |`);
  }
  await Deno.remove(perf.file);
}

async function printStatements(requests: number): Promise<void> {
  const rows = await sql`
    select calls, total_exec_time, rows, toplevel, regexp_replace(query, '\\s+', ' ', 'g') as query
    from pg_stat_statements order by total_exec_time desc limit ${TOP}`;
  console.log("\n| statement (nested ones inside their caller) | calls/request | µs/request | µs/call |");
  console.log("| --- | ---: | ---: | ---: |");
  for (const r of rows) {
    const text = String(r.query).slice(0, 110).replaceAll("|", "\\|");
    console.log(
      `| ${r.toplevel ? "" : "↳ "}${text} | ${round(Number(r.calls) / requests)} | ${
        round(r.total_exec_time * 1000 / requests)
      } | ${round(r.total_exec_time * 1000 / Number(r.calls))} |`,
    );
  }
}

async function printFunctions(requests: number): Promise<void> {
  const rows = await sql`
    select schemaname || '.' || funcname as name, calls, total_time, self_time
    from pg_stat_user_functions order by self_time desc limit ${TOP}`;
  console.log("\n| function | calls/request | self µs/request | total µs/request |\n| --- | ---: | ---: | ---: |");
  for (const r of rows) {
    console.log(
      `| ${r.name} | ${round(Number(r.calls) / requests)} | ${round(r.self_time * 1000 / requests)} | ${
        round(r.total_time * 1000 / requests)
      } |`,
    );
  }
}
