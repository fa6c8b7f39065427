/**
 * `deno task bench`: the endpoint side by side with pgbench calling the same
 * ingest_write(), on one durable PostgreSQL; printed and saved as JSON.
 *
 * 1. PostgreSQL with default durability; DATASOURCES datasources with the
 *    documentation's three widgets and a key each.
 * 2. The function served as deployed (index.ts, postgres store, defaults).
 * 3. Per concurrency: wrk drives the documentation's combined payload over all
 *    keys; then pgbench runs `select ingest_write(...)` with the same payload
 *    and spread, one call per transaction (the baseline). The database is
 *    vacuumed before each phase.
 * 4. Every 200 must be in datasource_readings (exit 1 otherwise).
 * 5. Unless --no-limits: the endpoint with every limit set to 0 (the check
 *    finds nothing to lock) before and after, and with the key limits alone,
 *    around the phase with every limit on (all set high enough never to
 *    refuse); the ratios to "off" and the CPU per request of each.
 *
 * Options: --duration=15 --connections=16,64 --datasources=100 --warmup=5 --phase-warmup=3
 *          --parallel (serve the function with `deno serve --parallel`: one copy per core)
 *          --instances=K (K function processes per configuration, one wrk each with its share of the
 *          connections, as round-robin routing over K isolates would spread them; the figures are their sums);
 *          a list (--instances=1,4,8) runs the other phases with its first K, then the endpoint with the
 *          default limits once per K: the fleet table (req/s, p99, batch size seen, CPU per request)
 *          --pooler (the function processes reach PostgreSQL through PgBouncer in transaction mode, the
 *          stand-in for Supabase's pooler; pgbench stays direct)
 *          --rounds=N (the limit phases of step 5 N times over, each figure the mean of its N phases: one
 *          phase's req/s varies by a tenth or more from one to the next on a busy 2-core machine)
 */
import postgres from "postgres";
import { startPooler } from "../local/pooler.ts";
import {
  COMBINED_PAYLOAD,
  cpuSeconds,
  machineCpuSeconds,
  postgresCpuSeconds,
  progress,
  readingsCount,
  requireTool,
  round,
  run,
  scriptOptions,
  seedDatasources,
  type SeededKey,
  startDurablePostgres,
  startFunction,
  wrk,
  type WrkFigures,
} from "./load.ts";

const {
  duration: DURATION_S,
  connections: CONNECTION_LIST,
  datasources: DATASOURCES,
  warmup: WARMUP_S,
  "phase-warmup": PHASE_WARMUP_S,
  parallel: PARALLEL,
  "no-limits": NO_LIMITS,
  instances: INSTANCES,
  pooler: POOLER,
  rounds: ROUNDS,
} = scriptOptions({
  duration: 15,
  connections: "16,64",
  datasources: 100,
  warmup: 5,
  "phase-warmup": 3,
  parallel: false,
  "no-limits": false,
  instances: "1",
  pooler: false,
  rounds: 1,
});
/** Every limit on, high enough never to refuse: what the database's limit check costs. */
const LIMITS_HIGH = {
  INGEST_RATE_LIMIT_PER_SECOND: "1000000",
  INGEST_RATE_LIMIT_BURST: "1000000",
  INGEST_RATE_LIMIT_READINGS_PER_SECOND: "1000000",
  INGEST_RATE_LIMIT_READINGS_BURST: "1000000",
  INGEST_WORKSPACE_READINGS_PER_SECOND: "10000000",
  INGEST_WORKSPACE_READINGS_PER_DAY: "1000000000000",
  INGEST_WORKSPACE_READINGS_PER_MONTH: "1000000000000",
};
/** The key limits alone, high (the default deployment has key limits and no workspace limit). */
const LIMITS_KEYS = {
  ...LIMITS_HIGH,
  INGEST_WORKSPACE_READINGS_PER_SECOND: "0",
  INGEST_WORKSPACE_READINGS_PER_DAY: "0",
  INGEST_WORKSPACE_READINGS_PER_MONTH: "0",
};
/** Every limit off: the write functions skip the check. */
const LIMITS_OFF = { INGEST_RATE_LIMIT_PER_SECOND: "0", INGEST_RATE_LIMIT_READINGS_PER_SECOND: "0" };
const CONNECTIONS = CONNECTION_LIST.split(",").map(Number);
const FLEET = INSTANCES.split(",").map(Number);
const FIRST_K = FLEET[0]!;
if (FLEET.some((k) => !Number.isInteger(k) || k < 1)) {
  throw new Error(`Cannot read --instances=${INSTANCES}: whole numbers >= 1`);
}
const OUT_DIR = new URL("../.bench/", import.meta.url).pathname;

interface Figures extends WrkFigures {
  cpu_function_s?: number;
  cpu_postgres_s?: number;
  /** The load generator, the kernel's network work and anything else running. */
  cpu_other_s?: number;
  /** Requests per write transaction, as the stored readings show them (one received_at per transaction). */
  batch_mean?: number;
  batch_p50?: number;
}
interface Result {
  endpoint: Figures;
  baseline: Figures;
  ratio: number;
  lost: number;
  /** The endpoint with every limit off, and limits on / off (req/s). */
  no_limits?: Figures;
  limits_ratio?: number;
  /** The endpoint with the key limits alone, and its ratio to limits off. */
  key_limits?: Figures;
  key_limits_ratio?: number;
  /** With a list of --instances: the endpoint with the default limits, per K. */
  fleet?: Record<string, Figures>;
}

await requireTool("wrk", "wrk");
await requireTool("pgbench", "postgresql-contrib");
await Deno.mkdir(OUT_DIR, { recursive: true });
const { server, sql } = await startDurablePostgres();
/** The function processes of one configuration, K of them with --instances=K. */
interface Target {
  urls: string[];
  processes: Deno.ChildProcess[];
}
const targets: Target[] = [];
const pooler = POOLER ? await startPooler(server.port, { poolSize: 20 }) : undefined;
try {
  const keys = await seedDatasources(sql, DATASOURCES);
  await sql`create schema bench`;
  await sql`create table bench.keys (k int primary key, datasource_id uuid not null, key_id uuid not null)`;
  await sql`insert into bench.keys ${
    sql(keys.map((k, i) => ({ k: i + 1, datasource_id: k.datasourceId, key_id: k.keyId })))
  }`;
  progress("bench", `seeded ${DATASOURCES} datasources with 3 widgets and a key each`);
  const pgbenchFile = `${OUT_DIR}ingest.sql`;
  await Deno.writeTextFile(
    pgbenchFile,
    `\\set k random(1, ${DATASOURCES})\n` +
      `select public.ingest_write(b.datasource_id, b.key_id, '${COMBINED_PAYLOAD}'::jsonb) from bench.keys b where b.k = :k;\n`,
  );

  const functionUrl = pooler ? pooler.pooled(server.url) : server.url;
  progress("bench", `warming up for ${WARMUP_S}s per configuration`);
  const started = await startTarget(functionUrl, LIMITS_HIGH, keys);
  const unlimited = !NO_LIMITS ? await startTarget(functionUrl, LIMITS_OFF, keys) : undefined;
  const keyLimited = !NO_LIMITS ? await startTarget(functionUrl, LIMITS_KEYS, keys) : undefined;

  const results: Record<string, Result> = {};
  for (const connections of CONNECTIONS) {
    // Limits off, then on (high), then off again: the ratio compares "on" with the mean of the "off" phases
    // around it, so that a database growing during the run favours neither; --rounds times over.
    const rounds: Record<"offBefore" | "keysOnly" | "all" | "offAfter", Phase | undefined>[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      rounds.push({
        offBefore: unlimited ? await endpointPhase(unlimited, keys, connections, "limits off") : undefined,
        keysOnly: keyLimited ? await endpointPhase(keyLimited, keys, connections, "key limits, high") : undefined,
        all: await endpointPhase(started, keys, connections, "limits on, high"),
        offAfter: unlimited ? await endpointPhase(unlimited, keys, connections, "limits off") : undefined,
      });
    }
    const phases = (name: keyof typeof rounds[number]) => rounds.flatMap((r) => r[name] ? [r[name]] : []);
    const endpoint = meanFigures(phases("all").map((p) => p.figures));
    const stored = phases("all").reduce((sum, p) => sum + p.stored, 0) / ROUNDS;
    const offs = [...phases("offBefore"), ...phases("offAfter")];
    const noLimits = offs.length > 0 ? meanFigures(offs.map((p) => p.figures)) : undefined;
    const keysOnly = phases("keysOnly").length > 0
      ? { figures: meanFigures(phases("keysOnly").map((p) => p.figures)) }
      : undefined;

    await vacuum(sql);
    progress(
      "bench",
      `baseline: pgbench ingest_write(), ${connections} connections, ${PHASE_WARMUP_S}s unmeasured then ${DURATION_S}s`,
    );
    await pgbench(server.url, { connections, durationS: PHASE_WARMUP_S, script: pgbenchFile });
    const baseline = await pgbench(server.url, { connections, durationS: DURATION_S, script: pgbenchFile });
    results[String(connections)] = {
      endpoint,
      baseline,
      ratio: round(endpoint.requests_per_s / baseline.requests_per_s),
      lost: Math.max(0, endpoint.ok - stored) +
        [...offs, ...phases("keysOnly")].reduce((sum, p) => sum + p.lost, 0),
      ...(noLimits && keysOnly
        ? {
          key_limits: keysOnly.figures,
          key_limits_ratio: round(keysOnly.figures.requests_per_s / noLimits.requests_per_s),
        }
        : {}),
      ...(noLimits
        ? { no_limits: noLimits, limits_ratio: round(endpoint.requests_per_s / noLimits.requests_per_s) }
        : {}),
    };
  }
  if (FLEET.length > 1) {
    for (const k of FLEET) {
      const fleet = await startTarget(functionUrl, {}, keys, k);
      for (const connections of CONNECTIONS) {
        const { figures, lost } = await endpointPhase(fleet, keys, connections, `default limits, ${k} processes`);
        const result = results[String(connections)]!;
        result.fleet = { ...result.fleet, [k]: figures };
        result.lost += lost;
      }
      await stopTarget(fleet);
    }
  }

  const machine = `${navigator.hardwareConcurrency} cores, ${Deno.build.os}, Deno ${Deno.version.deno}${
    PARALLEL ? ", deno serve --parallel" : ""
  }${FIRST_K > 1 ? `, ${FIRST_K} function processes per configuration` : ""}${
    POOLER ? ", function through PgBouncer (transaction mode)" : ""
  }`;
  const report = { machine, duration_s: DURATION_S, datasources: DATASOURCES, results, at: new Date().toISOString() };
  await Deno.writeTextFile(`${OUT_DIR}results.json`, JSON.stringify(report, null, 2));
  printReport(machine, results);
  if (Object.values(results).some((r) => r.lost > 0)) {
    console.error("Lost writes: some 200 responses are not in datasource_readings");
    Deno.exitCode = 1;
  }
} finally {
  for (const process of targets.flatMap((t) => t.processes)) {
    process.kill("SIGTERM");
    await process.status;
  }
  await pooler?.stop();
  await sql.end();
  await server.stop();
}

function printReport(machine: string, results: Record<string, Result>): void {
  console.log(`\nMachine: ${machine}; PostgreSQL with fsync and synchronous_commit on\n`);
  console.log(
    "| connections | endpoint req/s | p50 ms | p99 ms | non-2xx | lost | pgbench ingest_write() tx/s | p50 ms | p99 ms | endpoint/baseline | CPU s function / postgres / other |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const [c, r] of Object.entries(results)) {
    const e = r.endpoint, b = r.baseline;
    console.log(
      `| ${c} | ${e.requests_per_s} | ${e.p50_ms} | ${e.p99_ms} | ${e.non_2xx} | ${r.lost} | ${b.requests_per_s} | ${b.p50_ms} | ${b.p99_ms} | ${r.ratio} | ${e.cpu_function_s} / ${e.cpu_postgres_s} / ${e.cpu_other_s} |`,
    );
  }
  if (Object.values(results).some((r) => r.no_limits)) {
    console.log(
      "\nLimits in the database, set high enough never to refuse (all: key and workspace limits; keys: the key " +
        `limits alone, as by default) vs every limit off${
          ROUNDS > 1 ? `, each the mean of ${ROUNDS} rounds (${2 * ROUNDS} phases off)` : ""
        }:\n`,
    );
    console.log(
      "| connections | all req/s | keys req/s | off req/s | all / off | keys / off | PostgreSQL µs/request all | keys | off | function µs/request all | keys | off |",
    );
    console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (const [c, r] of Object.entries(results)) {
      if (!r.no_limits) continue;
      const perRequest = (f: Figures | undefined, cpu: "cpu_postgres_s" | "cpu_function_s") =>
        f?.[cpu] === undefined ? "?" : round((f[cpu]! / f.ok) * 1e6);
      const k = r.key_limits;
      const cells = [
        r.endpoint.requests_per_s,
        k?.requests_per_s ?? "?",
        r.no_limits.requests_per_s,
        r.limits_ratio,
        r.key_limits_ratio ?? "?",
        perRequest(r.endpoint, "cpu_postgres_s"),
        perRequest(k, "cpu_postgres_s"),
        perRequest(r.no_limits, "cpu_postgres_s"),
        perRequest(r.endpoint, "cpu_function_s"),
        perRequest(k, "cpu_function_s"),
        perRequest(r.no_limits, "cpu_function_s"),
      ];
      console.log(`| ${c} | ${cells.join(" | ")} |`);
    }
  }
  if (Object.values(results).some((r) => r.fleet)) {
    console.log(
      "\nThe function as K processes on one database (default limits), the connections split among them, " +
        "as round-robin routing over K isolates spreads requests:\n",
    );
    console.log(
      "| connections | K | req/s | p99 ms | requests per transaction mean / p50 | PostgreSQL µs/request | function µs/request |",
    );
    console.log("| --- | --- | --- | --- | --- | --- | --- |");
    for (const [c, r] of Object.entries(results)) {
      for (const [k, f] of Object.entries(r.fleet ?? {})) {
        const us = (cpu = 0) => round((cpu / f.ok) * 1e6);
        console.log(
          `| ${c} | ${k} | ${f.requests_per_s} | ${f.p99_ms} | ${f.batch_mean} / ${f.batch_p50} | ${
            us(f.cpu_postgres_s)
          } | ${us(f.cpu_function_s)} |`,
        );
      }
    }
  }
  console.log(`\nFigures saved to .bench/results.json`);
}

/**
 * One measured endpoint phase on a vacuumed and checkpointed database (so that none pays for the autovacuum
 * of the rows an earlier phase wrote), after PHASE_WARMUP_S unmeasured (the first write to each page after a
 * checkpoint logs the whole page; a server checkpoints every 30 min, not before each 15 s).
 */
/** Starts `count` function processes with `env` on `databaseUrl`, and warms them up. */
async function startTarget(
  databaseUrl: string,
  env: Record<string, string>,
  keys: SeededKey[],
  count = FIRST_K,
): Promise<Target> {
  const started = await Promise.all(
    Array.from({ length: count }, () => startFunction(databaseUrl, { parallel: PARALLEL, env })),
  );
  const target = { urls: started.map((s) => s.url), processes: started.map((s) => s.process) };
  targets.push(target);
  await wrkAll(target, keys, 16, WARMUP_S);
  return target;
}

/** Stops the processes of `target`. */
async function stopTarget(target: Target): Promise<void> {
  for (const process of target.processes) {
    process.kill("SIGTERM");
    await process.status;
  }
  targets.splice(targets.indexOf(target), 1);
}

/** One wrk per process of `target`, each with its share of `connections`, at once; their figures summed. */
async function wrkAll(target: Target, keys: SeededKey[], connections: number, durationS: number): Promise<Figures> {
  const share = Math.max(2, Math.round(connections / target.urls.length));
  const all = await Promise.all(target.urls.map((url) => wrk(url, { keys, connections: share, durationS })));
  return {
    requests_per_s: round(all.reduce((sum, f) => sum + f.requests_per_s, 0)),
    p50_ms: Math.max(...all.map((f) => f.p50_ms)),
    p99_ms: Math.max(...all.map((f) => f.p99_ms)),
    non_2xx: all.reduce((sum, f) => sum + f.non_2xx, 0),
    ok: all.reduce((sum, f) => sum + f.ok, 0),
  };
}

/** CPU seconds of every process of `target`. */
function targetCpuSeconds(target: Target): number {
  return target.processes.reduce((sum, process) => sum + cpuSeconds(process.pid), 0);
}

/** One endpoint phase: its figures, the requests it stored, and its 200s not in the history. */
interface Phase {
  figures: Figures;
  stored: number;
  lost: number;
}

async function endpointPhase(
  target: Target,
  keys: SeededKey[],
  connections: number,
  label: string,
): Promise<Phase> {
  await vacuum(sql);
  progress(
    "bench",
    `endpoint (${label}): wrk, ${connections} connections, ${PHASE_WARMUP_S}s unmeasured then ${DURATION_S}s`,
  );
  await wrkAll(target, keys, connections, PHASE_WARMUP_S);
  await settle();
  const before = await readingsCount(sql);
  const [newest] = await sql<{ last: string }[]>`
    select coalesce(max(id), 0)::text as last from public.datasource_readings`;
  const [fnBefore, pgBefore, allBefore] = [
    targetCpuSeconds(target),
    postgresCpuSeconds(server.dataDir),
    machineCpuSeconds(),
  ];
  const figures: Figures = await wrkAll(target, keys, connections, DURATION_S);
  figures.cpu_function_s = round(targetCpuSeconds(target) - fnBefore);
  figures.cpu_postgres_s = round(postgresCpuSeconds(server.dataDir) - pgBefore);
  figures.cpu_other_s = round(machineCpuSeconds() - allBefore - figures.cpu_function_s - figures.cpu_postgres_s);
  await settle();
  const stored = (await readingsCount(sql) - before) / 3;
  Object.assign(figures, await batchSizes(newest!.last));
  return { figures, stored, lost: Math.max(0, figures.ok - stored) };
}

/**
 * Requests per write transaction among the readings stored after id `after`: each transaction stores its
 * readings with one received_at (its now()), three per request of the combined payload.
 */
async function batchSizes(after: string): Promise<{ batch_mean: number; batch_p50: number }> {
  const [row] = await sql`
    select avg(n)::float8 as mean, percentile_disc(0.5) within group (order by n)::float8 as p50
    from (select count(*) / 3.0 as n from public.datasource_readings where id > ${after}::bigint group by received_at) b`;
  return { batch_mean: round(row!.mean ?? 0), batch_p50: round(row!.p50 ?? 0) };
}

/** The mean of several phases' figures (batch sizes only when every phase has them). */
function meanFigures(all: Figures[]): Figures {
  const mean = (pick: (f: Figures) => number | undefined) =>
    round(all.reduce((sum, f) => sum + (pick(f) ?? 0), 0) / all.length);
  return {
    requests_per_s: mean((f) => f.requests_per_s),
    p50_ms: mean((f) => f.p50_ms),
    p99_ms: mean((f) => f.p99_ms),
    non_2xx: all.reduce((sum, f) => sum + f.non_2xx, 0),
    ok: Math.round(all.reduce((sum, f) => sum + f.ok, 0) / all.length),
    cpu_function_s: mean((f) => f.cpu_function_s),
    cpu_postgres_s: mean((f) => f.cpu_postgres_s),
    cpu_other_s: mean((f) => f.cpu_other_s),
    ...(all.every((f) => f.batch_mean !== undefined)
      ? { batch_mean: mean((f) => f.batch_mean), batch_p50: mean((f) => f.batch_p50) }
      : {}),
  };
}

/** Lets the requests still in flight when wrk stopped finish. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 500));
}

async function vacuum(sql: postgres.Sql): Promise<void> {
  await sql`vacuum (analyze) public.datasource_values, public.datasource_readings, public.datasources,
    public.datasource_api_keys, realtime.messages`;
  await sql`checkpoint`;
  const [wal] = await sql`select count(*)::int as ready from pg_ls_waldir()
    where name ~ '^[0-9A-F]{24}$' and name > pg_walfile_name(pg_current_wal_lsn())`;
  progress("bench", `vacuumed and checkpointed; ${wal!.ready} WAL files ready for reuse`);
}

async function pgbench(
  url: string,
  options: { connections: number; durationS: number; script: string },
): Promise<Figures> {
  const u = new URL(url);
  const logDir = await Deno.makeTempDir({ prefix: "pgbench-log-" });
  const out = await run("pgbench", [
    ...["-n", "-M", "prepared", "-h", u.hostname, "-p", u.port, "-U", "postgres"],
    ...["-c", String(options.connections), "-j", "2", "-T", String(options.durationS), "-f", options.script],
    ...["-l", `--log-prefix=${logDir}/log`, "postgres"],
  ]);
  // Per-transaction log lines: client_id transaction_no latency_us script_no time epoch_us.
  const latencies: number[] = [];
  for (const entry of Deno.readDirSync(logDir)) {
    for (const line of Deno.readTextFileSync(`${logDir}/${entry.name}`).split("\n")) {
      const latency = Number(line.split(" ")[2]);
      if (line && Number.isFinite(latency)) latencies.push(latency / 1000);
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
