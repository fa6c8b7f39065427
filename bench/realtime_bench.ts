/**
 * `deno task bench:realtime`: Realtime under the main benchmark's load, in one
 * run on one durable PostgreSQL.
 *
 * 1. Latency: `--datasources` datasources, each watched by one subscriber
 *    (watchDatasource on a supabase-js client and socket of its own) through
 *    the local Realtime stand-in. wrk drives the documentation's combined
 *    payload over all keys at `--connections`; meanwhile a probe POSTs a new
 *    value of a `probe` DataKey (a SingleData widget wrk never writes) to one
 *    datasource after another every `--probe-interval` ms and notes when its
 *    subscriber shows it: POST-to-subscriber latency, p50 and p99.
 * 2. The broadcast budget and its cost, in three phases alternating `--rounds`
 *    times, each with the probe running: `budget` (the defaults: 4 broadcasts a
 *    second per datasource, INGEST_REALTIME_MAX_MESSAGES_PER_SECOND 100 for all),
 *    `every commit` (broadcasts_per_second 0: one broadcast per commit, as before
 *    the budget), `none` (realtime.send a no-op: the floor). For each: requests
 *    per second, PostgreSQL CPU per request, messages sent per second (in all,
 *    per datasource mean and most) and the probe's latency; then the throughput
 *    of `budget` against `every commit`. Subscribers and stand-in run in this
 *    process, so delivering takes CPU from the same machine.
 *
 * The delivery measured is the stand-in's (LISTEN/NOTIFY and a read by id),
 * not Supabase Realtime's (a logical replication slot): see docs/realtime.md.
 *
 * Options: --duration=10 --connections=64 --rounds=2 --datasources=100 --probe-interval=20
 */
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { type Watch, watchDatasource } from "../clients/watch_datasource.ts";
import { anonKey, DEFAULT_JWT_SECRET, mintUserToken } from "../local/jwt.ts";
import { freePort } from "../local/net.ts";
import { addWidget } from "../local/provisioning.ts";
import { startSupabaseStandIns } from "../local/supabase_stand_ins.ts";
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
  duration: DURATION_S,
  connections: CONNECTIONS,
  rounds: ROUNDS,
  datasources: DATASOURCES,
  "probe-interval": PROBE_INTERVAL_MS,
} = scriptOptions({ duration: 10, connections: 64, rounds: 2, datasources: 100, "probe-interval": 20 });
const SCRIPT = "bench:realtime";
type Kind = "budget" | "every commit" | "none";
const KINDS: Kind[] = ["budget", "every commit", "none"];

await requireTool("wrk", "wrk");
// The benchmark measures the write and delivery paths, not the per-key rate limit.
Deno.env.set("INGEST_RATE_LIMIT_PER_SECOND", "0");

const { server, sql } = await startDurablePostgres();
const cleanups: (() => Promise<unknown>)[] = [async () => await server.stop()];
try {
  progress(SCRIPT, `seeding ${DATASOURCES} datasources, each with a probe widget`);
  const keys = await seedDatasources(sql, DATASOURCES);
  for (const key of keys) {
    await addWidget(sql, key.datasourceId, {
      name: "Probe",
      widget_type: "SingleData",
      data_key: "probe",
      settings: {},
    });
  }
  const userId = crypto.randomUUID();
  await sql`insert into auth.users (id, email) values (${userId}, 'bench@twinnoverse.local')`;
  await sql`insert into public.workspace_members (workspace_id, user_id, role)
    select distinct workspace_id, ${userId}::uuid, 'viewer' from public.datasources`;
  const [send] =
    await sql`select pg_get_functiondef('realtime.send(jsonb, text, text, boolean)'::regprocedure) as text`;

  const fn = await startFunction(server.url);
  cleanups.unshift(async () => {
    fn.process.kill();
    await fn.process.status;
  });
  const standIns = await startSupabaseStandIns({
    databaseUrl: server.url,
    jwtSecret: DEFAULT_JWT_SECRET,
    feed: "notify",
  });
  const port = freePort();
  const http = Deno.serve(
    { hostname: "127.0.0.1", port, onListen: () => {} },
    (request) => standIns.route(request) ?? new Response("not found", { status: 404 }),
  );
  cleanups.unshift(async () => {
    await standIns.close();
    await http.shutdown();
  });

  progress(SCRIPT, `${DATASOURCES} subscribers joining`);
  const supabaseUrl = `http://127.0.0.1:${port}`;
  const anon = await anonKey(DEFAULT_JWT_SECRET);
  const token = await mintUserToken(DEFAULT_JWT_SECRET, userId, { expiresIn: 24 * 3600 });
  const sent = new Map<string, number>();
  let latencies: number[] = [];
  const clients: SupabaseClient[] = [];
  const watches: Watch[] = [];
  let live = 0;
  for (const key of keys) {
    const client = createClient(supabaseUrl, anon, { accessToken: () => Promise.resolve(token) });
    clients.push(client);
    watches.push(watchDatasource(client, key.datasourceId, {
      onValues(values, changed) {
        if (!changed.includes("probe")) return;
        const at = sent.get(`${key.datasourceId}:${values.probe!.value}`);
        if (at !== undefined) latencies.push(performance.now() - at);
      },
      onStatus(status) {
        if (status === "live") live++;
      },
    }));
  }
  cleanups.unshift(async () => {
    for (const watch of watches) await watch.stop();
    for (const client of clients) await client.removeAllChannels();
  });
  while (live < DATASOURCES) await new Promise((resolve) => setTimeout(resolve, 100));

  let probeSeq = 0;
  let probeFailures = 0;
  /** POSTs probe values one after another until `stop` is set; resolves with the number sent. */
  const probe = async (stop: { done: boolean }): Promise<number> => {
    let count = 0;
    while (!stop.done) {
      const key = keys[probeSeq % keys.length]!;
      const value = ++probeSeq;
      sent.set(`${key.datasourceId}:${value}`, performance.now());
      const res = await fetch(fn.url, {
        method: "POST",
        headers: { "X-API-Key": key.apiKey, "Content-Type": "application/json" },
        body: JSON.stringify({ probe: value }),
      });
      await res.body?.cancel();
      if (res.status !== 200) probeFailures++;
      count++;
      await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS));
    }
    return count;
  };

  /** One measured phase (see the module documentation), with the probe running. */
  const phase = async (kind: Kind) => {
    await sql.unsafe(
      kind === "none"
        ? `create or replace function realtime.send(payload jsonb, event text, topic text,
        private boolean default true) returns void language plpgsql as $$ begin end $$`
        : send!.text,
    );
    await sql`update public.datasources set broadcasts_per_second = ${kind === "budget" ? 4 : 0}`;
    await sql`alter table realtime.messages enable trigger stand_in_notify_message`;
    await sql`checkpoint`;
    latencies = [];
    const stop = { done: false };
    const probing = probe(stop);
    const [before] = await sql`select coalesce(max(inserted_at), '-infinity')::text as at from realtime.messages`;
    const cpu0 = postgresCpuSeconds(server.dataDir);
    const figures = await wrk(fn.url, { keys, connections: CONNECTIONS, durationS: DURATION_S });
    const cpu = postgresCpuSeconds(server.dataDir) - cpu0;
    const [after] = await sql`select (now() at time zone 'UTC')::text as at`; // the function's sessions write in UTC
    stop.done = true;
    const requests = figures.ok + figures.non_2xx + await probing;
    await new Promise((resolve) => setTimeout(resolve, 1000)); // the last probes and pending broadcasts
    const perDatasource = await sql`select count(*)::int as n from realtime.messages
      where inserted_at > ${before!.at}::timestamp and inserted_at <= ${after!.at}::timestamp group by topic`;
    const messages = perDatasource.reduce((sum, r) => sum + r.n, 0);
    const sorted = latencies.toSorted((a, b) => a - b);
    const pick = (q: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN);
    return {
      kind,
      ...figures,
      pg_cpu_us_per_request: round(cpu / requests * 1e6),
      messages_per_s: round(messages / DURATION_S),
      messages_per_s_per_datasource_mean: round(messages / DURATION_S / DATASOURCES),
      messages_per_s_per_datasource_most: round(Math.max(0, ...perDatasource.map((r) => r.n)) / DURATION_S),
      probe_p50_ms: pick(0.5),
      probe_p99_ms: pick(0.99),
      probes_seen: latencies.length,
    };
  };

  progress(SCRIPT, "warm-up");
  await wrk(fn.url, { keys, connections: CONNECTIONS, durationS: 3 });
  const results: Awaited<ReturnType<typeof phase>>[] = [];
  for (let round_ = 1; round_ <= ROUNDS; round_++) {
    for (const kind of KINDS) {
      progress(SCRIPT, `round ${round_}: ${kind}, ${DURATION_S} s`);
      results.push(await phase(kind));
      progress(SCRIPT, `  ${JSON.stringify(results.at(-1))}`);
    }
  }
  await sql.unsafe(send!.text);
  const mean = (kind: Kind, field: keyof Awaited<ReturnType<typeof phase>>) => {
    const rows = results.filter((r) => r.kind === kind);
    return round(rows.reduce((sum, r) => sum + Number(r[field]), 0) / rows.length);
  };
  const fields = [
    "requests_per_s",
    "pg_cpu_us_per_request",
    "messages_per_s",
    "messages_per_s_per_datasource_mean",
    "messages_per_s_per_datasource_most",
    "probe_p50_ms",
    "probe_p99_ms",
  ] as const;
  const byKind = Object.fromEntries(
    KINDS.map((kind) => [kind, Object.fromEntries(fields.map((field) => [field, mean(kind, field)]))]),
  );
  const summary = {
    datasources: DATASOURCES,
    connections: CONNECTIONS,
    duration_s: DURATION_S,
    rounds: ROUNDS,
    budget: "4 broadcasts a second per datasource, 100 a second in all (the defaults)",
    probes: { sent: probeSeq, failures: probeFailures },
    ...byKind,
    throughput_ratio_budget_to_every_commit: round(
      mean("budget", "requests_per_s") / mean("every commit", "requests_per_s"),
    ),
    phases: results,
  };
  console.log(JSON.stringify(summary, null, 2));
} finally {
  for (const cleanup of cleanups) await cleanup().catch((e) => console.error(`cleanup: ${(e as Error).message}`));
  await sql.end().catch(() => {});
}
