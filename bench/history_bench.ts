/**
 * `deno task bench:history`: the partitioned history, in one run on one
 * durable PostgreSQL.
 *
 * 1. `--readings` readings (temperature and motor_stats, alternating) over 30
 *    days for `--datasources` datasources, in the day partitions, and the same
 *    rows in an unpartitioned copy with the same indexes.
 * 2. Reads, after the hour rollups (timed): a 24-hour range at 1-minute
 *    buckets (from the readings) and a 30-day range at 1-hour buckets (from
 *    the rollups) of one DataKey of a random datasource, `--calls` times each:
 *    datasource_history() as a member (row level security deciding), and the
 *    same aggregate query over the readings of the partitioned table and of
 *    the copy; p50/p99.
 * 3. Writes: the endpoint (wrk, `--connections`) with the history partitioned,
 *    and with the copy in its place, `--rounds` rounds in ABBA order, each phase
 *    after a checkpoint: requests/s and PostgreSQL CPU per request of each, and
 *    their ratio.
 * 4. maintain_history(): with nothing to do, and 62 days later (the days past the
 *    90-day default retention dropped).
 *
 * Options: --readings=10000000 --datasources=100 --calls=30 --connections=64 --duration=10 --rounds=4
 */
import {
  postgresCpuSeconds,
  progress,
  requireTool,
  round,
  scriptOptions,
  seedDatasources,
  startDurablePostgres,
  startFunction,
  wrk,
} from "./load.ts";

const {
  readings: READINGS,
  datasources: DATASOURCES,
  calls: CALLS,
  connections: CONNECTIONS,
  duration: DURATION_S,
  rounds: ROUNDS,
} = scriptOptions({ readings: 10_000_000, datasources: 100, calls: 30, connections: 64, duration: 10, rounds: 4 });
const SCRIPT = "bench:history";
const DAYS = 30;

await requireTool("wrk", "wrk");
const { server, sql } = await startDurablePostgres();
try {
  const keys = await seedDatasources(sql, DATASOURCES);
  await fillHistory();
  const rollup = await rollUp();
  const reads = await measureReads(keys.map((k) => k.datasourceId));
  const writes = await measureWrites(keys);
  const upkeep = await measureUpkeep();
  console.log(JSON.stringify({ readings: READINGS, datasources: DATASOURCES, rollup, reads, writes, upkeep }, null, 2));
} finally {
  await sql.end();
  await server.stop();
}

/** The readings, spread evenly over the last 30 days, and their unpartitioned copy `bench.readings`. */
async function fillHistory(): Promise<void> {
  progress(SCRIPT, `${READINGS} readings over ${DAYS} days for ${DATASOURCES} datasources`);
  for (let day = DAYS + 1; day >= 2; day--) {
    await sql`select private.create_history_partition(current_date - ${day}::int)`;
  }
  const perDatasource = Math.ceil(READINGS / DATASOURCES);
  const step = (DAYS * 86400) / perDatasource;
  await sql`insert into public.datasource_readings (datasource_id, data_key, value, observed_at, received_at)
    select d.id, case when n % 2 = 0 then 'temperature' else 'motor_stats' end,
      case when n % 2 = 0 then to_jsonb(round((20 + 10 * sin(n / 500.0))::numeric, 2))
        else jsonb_build_object('rpm', 1500 + n % 300, 'vibration', 0.5) end,
      now() - make_interval(secs => ${DAYS * 86400}::float8 - n * ${step}::float8), now()
    from public.datasources d, generate_series(0, ${perDatasource - 1}) n`;
  progress(SCRIPT, "the unpartitioned copy");
  await sql`create schema bench`;
  await sql`create table bench.readings (like public.datasource_readings including defaults)`;
  await sql`insert into bench.readings select * from public.datasource_readings`;
  await sql`alter table bench.readings add primary key (id, observed_at)`;
  await sql`create index on bench.readings (datasource_id, data_key, observed_at desc)`;
  await sql`vacuum analyze public.datasource_readings, bench.readings`;
  await sql`checkpoint`;
}

/** The hour rollups of every reading loaded (received just now: the run is told it is two minutes later). */
async function rollUp(): Promise<{ ms: number; hours: number }> {
  progress(SCRIPT, "the hour rollups");
  const start = performance.now();
  const [row] = await sql`select private.roll_up_history(now() + interval '2 minutes') as hours`;
  return { ms: round(performance.now() - start), hours: row!.hours };
}

/** p50 and p99 of `calls` runs of `query`, in ms. */
async function timed(
  calls: number,
  query: (i: number) => Promise<unknown>,
): Promise<{ p50_ms: number; p99_ms: number }> {
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    await query(i);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const pick = (q: number) => round(times[Math.min(times.length - 1, Math.floor(q * times.length))]!);
  return { p50_ms: pick(0.5), p99_ms: pick(0.99) };
}

async function measureReads(datasourceIds: string[]) {
  const userId = crypto.randomUUID();
  await sql`insert into auth.users (id, email) values (${userId}, 'history@twinnoverse.local')`;
  await sql`insert into public.workspace_members (workspace_id, user_id, role)
    select distinct workspace_id, ${userId}::uuid, 'viewer' from public.datasources`;
  const claims = JSON.stringify({ role: "authenticated", sub: userId });
  const ranges = { "24 h at 1 minute": ["24 hours", "1 minute"], "30 days at 1 hour": ["30 days", "1 hour"] };
  const results: Record<string, unknown> = {};
  for (const [name, [range, interval]] of Object.entries(ranges)) {
    progress(SCRIPT, `reads: ${name}, ${CALLS} calls each`);
    const id = (i: number) => datasourceIds[(i * 37) % datasourceIds.length]!;
    const aggregate = (table: string) => (i: number) =>
      sql.unsafe(
        `select date_bin($2::interval, observed_at, timestamptz '1970-01-01Z') as b, avg((value)::text::float8)
         from ${table} where datasource_id = $1 and data_key = 'temperature'
           and observed_at >= now() - $3::interval and observed_at < now()
         group by 1 order by 1`,
        [id(i), interval!, range!],
      );
    results[name] = {
      datasource_history: await timed(CALLS, (i) =>
        sql.begin(async (tx) => {
          await tx`set local role authenticated`;
          await tx`select set_config('request.jwt.claims', ${claims}, true)`;
          return await tx`select count(*) from public.datasource_history(${id(i)}, array['temperature'],
            now() - ${range!}::interval, now(), ${interval!}::interval, 'avg', 10000)`;
        })),
      query_partitioned: await timed(CALLS, aggregate("public.datasource_readings")),
      query_unpartitioned: await timed(CALLS, aggregate("bench.readings")),
    };
  }
  return results;
}

/** The endpoint with the partitioned history, then with the copy in its place, alternating. */
async function measureWrites(keys: Awaited<ReturnType<typeof seedDatasources>>) {
  const fn = await startFunction(server.url, { env: { INGEST_RATE_LIMIT_PER_SECOND: "0" } });
  try {
    await wrk(fn.url, { keys, connections: CONNECTIONS, durationS: 3 });
    const phases: { history: string; requests_per_s: number; pg_cpu_us_per_request: number }[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // ABBA: neither kind always goes first after the data was written.
      for (const history of r % 2 === 0 ? ["partitioned", "unpartitioned"] : ["unpartitioned", "partitioned"]) {
        await swap(history);
        await sql`checkpoint`;
        progress(SCRIPT, `writes, round ${r + 1}: ${history} history, ${DURATION_S}s`);
        const cpu0 = postgresCpuSeconds(server.dataDir);
        const figures = await wrk(fn.url, { keys, connections: CONNECTIONS, durationS: DURATION_S });
        const cpu = postgresCpuSeconds(server.dataDir) - cpu0;
        phases.push({
          history,
          requests_per_s: figures.requests_per_s,
          pg_cpu_us_per_request: round((cpu / figures.ok) * 1e6),
        });
      }
    }
    await swap("partitioned");
    const mean = (history: string, field: "requests_per_s" | "pg_cpu_us_per_request") => {
      const rows = phases.filter((p) => p.history === history);
      return round(rows.reduce((sum, p) => sum + p[field], 0) / rows.length);
    };
    return {
      partitioned: {
        requests_per_s: mean("partitioned", "requests_per_s"),
        pg_cpu_us_per_request: mean("partitioned", "pg_cpu_us_per_request"),
      },
      unpartitioned: {
        requests_per_s: mean("unpartitioned", "requests_per_s"),
        pg_cpu_us_per_request: mean("unpartitioned", "pg_cpu_us_per_request"),
      },
      throughput_ratio: round(mean("partitioned", "requests_per_s") / mean("unpartitioned", "requests_per_s")),
      phases,
    };
  } finally {
    fn.process.kill("SIGTERM");
    await fn.process.status;
  }
}

/** Puts the partitioned table or the copy at public.datasource_readings (the write functions name it). */
async function swap(history: string): Promise<void> {
  const [current] =
    await sql`select c.relkind::text as kind from pg_class c where c.oid = 'public.datasource_readings'::regclass`;
  const isPartitioned = current!.kind === "p";
  if ((history === "partitioned") === isPartitioned) return;
  await sql.begin(async (tx) => {
    await tx`alter table public.datasource_readings set schema bench`;
    await tx.unsafe(`alter table bench.datasource_readings rename to ${isPartitioned ? "partitioned" : "readings"}`);
    await tx.unsafe(`alter table bench.${isPartitioned ? "readings" : "partitioned"} rename to datasource_readings`);
    await tx`alter table bench.datasource_readings set schema public`;
  });
  await sql`checkpoint`;
}

async function measureUpkeep() {
  const time = async (now: string) => {
    const start = performance.now();
    const [row] = await sql`select private.maintain_history(${now}::timestamptz) as r`;
    return { ms: round(performance.now() - start), did: row!.r };
  };
  progress(SCRIPT, "maintain_history()");
  return {
    nothing_to_do: await time(new Date().toISOString()),
    // 60 days on: the days past the 90-day retention go (those over 90 days before the moved clock).
    days_later: await time(new Date(Date.now() + 62 * 86400_000).toISOString()),
  };
}
