/**
 * `deno task bench:gateway`: what gateways cost, as ratios measured in one run
 * on one durable PostgreSQL.
 *
 * 1. Idempotency-Key: wrk drives the documentation's combined payload over all
 *    keys without, then with a new Idempotency-Key on every request
 *    (in ABBA order, `--rounds` times each); the ratio of requests per second.
 *    `--expired` records older than a day are there first, so that keyed
 *    calls also expire records, as they do in steady state.
 * 2. Backfill: `--readings` readings of the combined payload in batches of
 *    `--batch` through the endpoint (`--clients` at once), then COPY of the
 *    same readings (three rows each) into datasource_readings: readings per
 *    second, and their ratio (the physical limit).
 *
 * Options: --duration=10 --connections=64 --rounds=4 --datasources=100
 *          --readings=100000 --batch=1000 --clients=4 (--readings=0: no backfill)
 *          --expired=300000
 */
import {
  COMBINED_PAYLOAD,
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
  connections: CONNECTIONS,
  rounds: ROUNDS,
  datasources: DATASOURCES,
  readings: READINGS,
  batch: BATCH,
  clients: CLIENTS,
  expired: EXPIRED,
} = scriptOptions({
  duration: 10,
  connections: 64,
  rounds: 4,
  datasources: 100,
  readings: 100_000,
  batch: 1000,
  clients: 4,
  expired: 300_000,
});

await requireTool("wrk", "wrk");
// Batches are limited by the readings bucket in production; the benchmark measures the write path.
Deno.env.set("INGEST_RATE_LIMIT_READINGS_PER_SECOND", "0");
const { server, sql } = await startDurablePostgres();
let fn: Deno.ChildProcess | undefined;
try {
  const keys = await seedDatasources(sql, DATASOURCES);
  // Steady state: records older than a day that each keyed write call deletes as it records new ones.
  progress("gateway", `seeding ${EXPIRED} Idempotency-Key records older than 24 hours`);
  await sql`insert into private.idempotency_keys (key_id, idempotency_key, request_hash, response, created_at)
    select (${keys.map((k) => k.keyId)}::uuid[])[1 + g % ${keys.length}], 'expired-' || g, 'h', '{}',
      now() - interval '25 hours' - g * interval '1 millisecond'
    from generate_series(1, ${EXPIRED}) g`;
  const started = await startFunction(server.url);
  fn = started.process;
  progress("gateway", "warming up for 5s");
  await wrk(started.url, { keys, connections: 16, durationS: 5, script: "idempotent.lua", env: { BENCH_RUN: "w" } });

  const phases: Record<string, number[]> = { without: [], with: [] };
  for (let r = 0; r < ROUNDS; r++) {
    // ABBA order: the tables grow through the run, so neither phase always comes later.
    const order = r % 2 === 0 ? ["without", "with"] as const : ["with", "without"] as const;
    for (const phase of order) {
      await sql`vacuum (analyze)`;
      await sql`checkpoint`;
      const env = { BENCH_IDEMPOTENCY: phase === "with" ? "1" : "0", BENCH_RUN: `${r}` };
      const cpuBefore = { fn: cpuSeconds(started.process.pid), pg: postgresCpuSeconds(server.dataDir) };
      const figures = await wrk(started.url, {
        keys,
        connections: CONNECTIONS,
        durationS: DURATION_S,
        script: "idempotent.lua",
        env,
      });
      if (figures.non_2xx > 0) throw new Error(`${figures.non_2xx} non-2xx responses ${phase} Idempotency-Key`);
      phases[phase]!.push(figures.requests_per_s);
      // CPU per request, in microseconds: where a difference between the phases comes from.
      const requests = figures.requests_per_s * DURATION_S;
      const fnUs = round((cpuSeconds(started.process.pid) - cpuBefore.fn) / requests * 1e6);
      const pgUs = round((postgresCpuSeconds(server.dataDir) - cpuBefore.pg) / requests * 1e6);
      progress(
        "gateway",
        `${phase} Idempotency-Key: ${figures.requests_per_s} req/s, p99 ${figures.p99_ms} ms, ` +
          `CPU per request: function ${fnUs} µs, PostgreSQL ${pgUs} µs`,
      );
    }
  }
  const mean = (list: number[]) => list.reduce((a, b) => a + b, 0) / list.length;
  const idempotencyRatio = round(mean(phases.with!) / mean(phases.without!));

  const backfilled = READINGS > 0 ? await backfill(keys, started.url) : undefined;
  console.log(`\nMachine: ${navigator.hardwareConcurrency} cores; PostgreSQL with fsync and synchronous_commit on\n`);
  console.log("| measure | figure |");
  console.log("| --- | --- |");
  console.log(
    `| main benchmark, ${CONNECTIONS} connections, req/s without / with Idempotency-Key (${ROUNDS} rounds of ${DURATION_S}s each) | ${
      phases.without!.join(", ")
    } / ${phases.with!.join(", ")} |`,
  );
  console.log(`| with / without | ${idempotencyRatio} |`);
  if (backfilled) {
    const { readings, endpointRate, copyRate } = backfilled;
    console.log(
      `| backfill: readings/s, ${BATCH}-reading batches, ${CLIENTS} clients (${readings} readings) | ${endpointRate} |`,
    );
    console.log(`| COPY of the same readings into datasource_readings: readings/s | ${copyRate} |`);
    console.log(`| endpoint / COPY | ${round(endpointRate / copyRate)} |`);
  }
} finally {
  fn?.kill("SIGTERM");
  await fn?.status;
  await sql.end();
  await server.stop();
}

/** Sends READINGS readings in BATCH-reading requests, then COPYs the same readings: readings per second of each. */
async function backfill(
  keys: SeededKey[],
  url: string,
): Promise<{ readings: number; endpointRate: number; copyRate: number }> {
  const start = Date.now() - READINGS * 10;
  const batches = Math.ceil(READINGS / BATCH);
  const bodies = (b: number) =>
    JSON.stringify(
      Array.from({ length: BATCH }, (_, i) => ({
        observed_at: start + (b * BATCH + i) * 10,
        values: JSON.parse(COMBINED_PAYLOAD),
      })),
    );
  await sql`vacuum (analyze)`;
  await sql`checkpoint`;
  const before = await readingsCount(sql);
  let next = 0;
  const began = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (next < batches) {
      const b = next++;
      const res = await fetch(url, {
        method: "POST",
        headers: { "X-API-Key": keys[b % keys.length]!.apiKey, "Content-Type": "application/json" },
        body: bodies(b),
      });
      if (res.status !== 200) throw new Error(`backfill batch ${b}: ${res.status} ${await res.text()}`);
      await res.body?.cancel();
    }
  }));
  const endpointS = (performance.now() - began) / 1000;
  const stored = (await readingsCount(sql) - before) / 3;
  if (stored !== batches * BATCH) throw new Error(`backfill stored ${stored} readings of ${batches * BATCH}`);

  // COPY of the same readings into datasource_readings.
  await sql`vacuum (analyze)`;
  await sql`checkpoint`;
  const values = JSON.parse(COMBINED_PAYLOAD) as Record<string, unknown>;
  const lines: string[] = [];
  const received = new Date().toISOString();
  for (let r = 0; r < batches * BATCH; r++) {
    const at = new Date(start + r * 10).toISOString();
    const ds = keys[Math.floor(r / BATCH) % keys.length]!.datasourceId;
    for (const [key, value] of Object.entries(values)) {
      lines.push(`${ds}\t${key}\t${JSON.stringify(value).replaceAll("\\", "\\\\")}\t${at}\t${received}\n`);
    }
  }
  const copyBegan = performance.now();
  const writable = await sql`copy public.datasource_readings (datasource_id, data_key, value, observed_at, received_at)
      from stdin`.writable();
  const encoder = new TextEncoder();
  for (let i = 0; i < lines.length; i += 10_000) {
    const chunk = encoder.encode(lines.slice(i, i + 10_000).join(""));
    if (!writable.write(chunk)) await new Promise((resolve) => writable.once("drain", resolve));
  }
  await new Promise<void>((resolve, reject) =>
    writable.end((error?: Error | null) => error ? reject(error) : resolve())
  );
  const copyS = (performance.now() - copyBegan) / 1000;
  const endpointRate = round((batches * BATCH) / endpointS);
  const copyRate = round((batches * BATCH) / copyS);
  return { readings: batches * BATCH, endpointRate, copyRate };
}
