/**
 * `deno task bench:rows`: what the rows a request writes cost PostgreSQL, for
 * issue 22's goal at 64 connections, and what a change of the data model
 * would bring. pgbench runs transactions shaped as the function's group
 * commits at 64 connections (`--clients` write transactions at once: about
 * 64 / 15, the requests per transaction `deno task bench --instances=1`
 * reports; each a batch of `--batch` requests of the documentation's three-key
 * payload on datasources of its own) that write the rows of one data model
 * each, with none of the function's checks but one read of the batch's keys,
 * datasources and widgets, and prints the PostgreSQL CPU per request:
 *
 * - `read`: that read alone, and the commit (what any shape pays);
 * - `today`: the read, three history rows (one per DataKey), three latest
 *   values, the datasource's `last_ingested_at` and the key's bucket;
 * - `bucket_in_row`: today's rows, but the key's two buckets kept in the
 *   datasource's row (logged) instead of `private.key_buckets` (unlogged);
 * - `history_row`: today's rows with one history row per request (its DataKeys in one jsonb);
 * - `latest_row`: that, and the latest values as one row per datasource;
 * - `datasource_row`: one history row per request, and the latest values and
 *   the key's bucket in the datasource's row, which the write updates anyway.
 *
 * The prototypes' tables live in the scratch schema `shapes` of the bench's
 * own PostgreSQL; the function and the migrations are not changed.
 *
 * Options: --duration=10 --clients=4 --batch=16 --warmup=3
 *          (--clients=1 --batch=1: each request alone)
 */
import {
  COMBINED_PAYLOAD,
  postgresCpuSeconds,
  progress,
  requireTool,
  round,
  run,
  scriptOptions,
  seedDatasources,
  startDurablePostgres,
} from "./load.ts";

const { duration: DURATION_S, clients: CLIENTS, batch: BATCH, warmup: WARMUP_S } = scriptOptions({
  duration: 10,
  clients: 4,
  batch: 16,
  warmup: 3,
});

/** The three DataKeys' values of the documentation's payload, as a SQL literal. */
const VALUES = `'${COMBINED_PAYLOAD}'::jsonb`;

/** The batch: the request's datasource and key, `:batch` of them per client (pgbench's `:client_id`). */
const BATCH_CTE = `with b as (
  select s.datasource_id, s.key_id from shapes.slots s
  where s.slot >= :client_id * ${BATCH} and s.slot < (:client_id + 1) * ${BATCH}
)`;

/** What every shape does first: read the batch's keys, datasources and widgets, as the write's own read does. */
const READ = `${BATCH_CTE}
select count(*) from b
join public.datasource_api_keys k on k.id = b.key_id and k.datasource_id = b.datasource_id
join public.datasources d on d.id = k.datasource_id
cross join lateral jsonb_object_keys(${VALUES}) e (key)
where exists (select 1 from public.widgets w where w.datasource_id = d.id and w.data_key = e.key);`;

/** The batch's datasources, their rows locked in id order (as the write locks them), for an update of `d`. */
const LOCKED_DATASOURCES =
  `from (select x.id from public.datasources x where x.id in (select datasource_id from b) order by x.id
  for no key update) l
where d.id = l.id;`;

/** The datasource's `last_ingested_at`. */
const DATASOURCE = `${BATCH_CTE}
update public.datasources d set last_ingested_at = now()
${LOCKED_DATASOURCES}`;

/** The datasource's `last_ingested_at` and a key bucket kept in its row: the update it gets anyway. */
const DATASOURCE_WITH_BUCKET = `${BATCH_CTE}
update public.datasources d
set last_ingested_at = now(),
  shapes_tat = greatest(coalesce(d.shapes_tat, 0), extract(epoch from now())) + 0.01,
  shapes_readings_tat = greatest(coalesce(d.shapes_readings_tat, 0), extract(epoch from now())) + 0.003
${LOCKED_DATASOURCES}`;

/** The key's bucket (GCRA). */
const BUCKET = `${BATCH_CTE}
update private.key_buckets k
set requests_tat = greatest(coalesce(k.requests_tat, 0), extract(epoch from now())) + 0.01,
  readings_tat = greatest(coalesce(k.readings_tat, 0), extract(epoch from now())) + 0.003
where k.key_id in (select key_id from b);`;

/** Three history rows per request, as stored today. */
const HISTORY_PER_KEY = `${BATCH_CTE}
insert into public.datasource_readings (datasource_id, data_key, value, observed_at, received_at)
select b.datasource_id, e.key, e.value, now(), now() from b, jsonb_each(${VALUES}) e;`;

/** One history row per request. */
const HISTORY_PER_REQUEST = `${BATCH_CTE}
insert into shapes.readings (datasource_id, vals, observed_at, received_at)
select b.datasource_id, ${VALUES}, now(), now() from b;`;

/** Three latest values per request, newest observation wins, as stored today. */
const LATEST_PER_KEY = `${BATCH_CTE}
insert into public.datasource_values as v (datasource_id, data_key, value, observed_at, received_at)
select b.datasource_id, e.key, e.value, now(), now() from b, jsonb_each(${VALUES}) e
on conflict (datasource_id, data_key) do update
  set value = excluded.value, observed_at = excluded.observed_at, received_at = excluded.received_at
  where v.observed_at <= excluded.observed_at;`;

/** The latest values as one row per datasource: each DataKey's value and time in two jsonb objects. */
const LATEST_PER_DATASOURCE = `${BATCH_CTE}
insert into shapes.latest as v (datasource_id, vals, observed, received_at)
select b.datasource_id, ${VALUES}, (select jsonb_object_agg(k, now()) from jsonb_object_keys(${VALUES}) k), now()
from b
on conflict (datasource_id) do update
  set vals = v.vals || excluded.vals, observed = v.observed || excluded.observed, received_at = excluded.received_at;`;

/** The datasource's row carrying `last_ingested_at`, the latest values and the key's bucket. */
const DATASOURCE_ROW = `${BATCH_CTE}
update public.datasources d
set last_ingested_at = now(), shapes_vals = coalesce(d.shapes_vals, '{}') || ${VALUES},
  shapes_observed = coalesce(d.shapes_observed, '{}')
    || (select jsonb_object_agg(k, now()) from jsonb_object_keys(${VALUES}) k),
  shapes_tat = greatest(coalesce(d.shapes_tat, 0), extract(epoch from now())) + 0.01
${LOCKED_DATASOURCES}`;

const SHAPES: Record<string, string[]> = {
  read: [READ],
  today: [READ, DATASOURCE, BUCKET, LATEST_PER_KEY, HISTORY_PER_KEY],
  bucket_in_row: [READ, DATASOURCE_WITH_BUCKET, LATEST_PER_KEY, HISTORY_PER_KEY],
  history_row: [READ, DATASOURCE, BUCKET, LATEST_PER_KEY, HISTORY_PER_REQUEST],
  latest_row: [READ, DATASOURCE, BUCKET, LATEST_PER_DATASOURCE, HISTORY_PER_REQUEST],
  datasource_row: [READ, DATASOURCE_ROW, HISTORY_PER_REQUEST],
};

await requireTool("pgbench", "postgresql-contrib");
const { server, sql } = await startDurablePostgres();
const rows: string[] = [];
try {
  progress("rows", `seeding ${CLIENTS * BATCH} datasources (${BATCH} per client)`);
  const keys = await seedDatasources(sql, CLIENTS * BATCH);
  await createShapes(keys.map((k) => [k.datasourceId, k.keyId]));
  for (const [name, statements] of Object.entries(SHAPES)) {
    rows.push(await measure(name, statements));
  }
} finally {
  await sql.end();
  await server.stop();
}
console.log(
  `\n${CLIENTS} clients, batches of ${BATCH} requests (the documentation's three-key payload); ` +
    `PostgreSQL with fsync and synchronous_commit on\n`,
);
console.log("| shape | transactions/s | requests/s | PostgreSQL CPU µs/request |");
console.log("| --- | ---: | ---: | ---: |");
for (const row of rows) console.log(row);

/** The prototypes' tables: the batch slots, a history of one row per request, latest values per datasource. */
async function createShapes(slots: string[][]): Promise<void> {
  await sql.unsafe(`
    create schema shapes;
    create table shapes.slots (slot int primary key, datasource_id uuid not null, key_id uuid not null);
    create table shapes.readings (
      id bigint generated always as identity,
      datasource_id uuid not null,
      vals jsonb not null,
      observed_at timestamptz not null,
      received_at timestamptz not null,
      primary key (id, observed_at)
    ) partition by range (observed_at);
    create table shapes.readings_near partition of shapes.readings
      for values from (now() - interval '2 days') to (now() + interval '2 days');
    create index on shapes.readings (datasource_id, observed_at desc);
    create index on shapes.readings using brin (received_at);
    create table shapes.latest (
      datasource_id uuid primary key, vals jsonb not null, observed jsonb not null, received_at timestamptz not null
    ) with (fillfactor = 50);
    alter table public.datasources
      add column shapes_vals jsonb, add column shapes_observed jsonb, add column shapes_tat float8,
      add column shapes_readings_tat float8;
  `);
  await sql`insert into shapes.slots ${sql(slots.map(([d, k], slot) => ({ slot, datasource_id: d, key_id: k })))}`;
  // Today's history partitions, as the upkeep makes them.
  await sql`select private.maintain_history()`;
}

/** One shape: a warm-up, then pgbench with PostgreSQL's CPU read around it. */
async function measure(name: string, statements: string[]): Promise<string> {
  const script = await Deno.makeTempFile({ suffix: ".sql" });
  try {
    await Deno.writeTextFile(script, ["begin;", ...statements, "commit;", ""].join("\n"));
    progress("rows", `${name}: ${WARMUP_S}s warm-up, then ${DURATION_S}s measured`);
    await sql`vacuum`;
    await pgbench(script, WARMUP_S);
    await sql`checkpoint`;
    await backendsReaped();
    const before = postgresCpuSeconds(server.dataDir);
    const { tps, transactions } = await pgbench(script, DURATION_S);
    await backendsReaped();
    const cpu = postgresCpuSeconds(server.dataDir) - before;
    return `| ${name} | ${round(tps)} | ${round(tps * BATCH)} | ${round(cpu * 1e6 / (transactions * BATCH))} |`;
  } finally {
    await Deno.remove(script);
  }
}

/**
 * Waits until pgbench's backends have exited and been reaped: their CPU then counts in the postmaster's (its
 * children's times), where a backend still exiting while postgresCpuSeconds reads /proc would be counted in neither.
 */
async function backendsReaped(): Promise<void> {
  for (let i = 0;; i++) {
    const [row] = await sql`select count(*)::int as n from pg_stat_activity where application_name = 'pgbench'`;
    if (row!.n === 0) break;
    if (i === 50) throw new Error(`Cannot measure: ${row!.n} pgbench backends still connected after 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
}

/** pgbench running `script` for `durationS`, CLIENTS at once (client ids 0 to CLIENTS - 1). */
async function pgbench(script: string, durationS: number): Promise<{ tps: number; transactions: number }> {
  const u = new URL(server.url);
  const out = await run("pgbench", [
    ...["-n", "-M", "prepared", "-h", u.hostname, "-p", u.port, "-U", "postgres"],
    ...["-c", String(CLIENTS), "-j", String(Math.min(CLIENTS, 2)), "-T", String(durationS), "-f", script, "postgres"],
  ]);
  return {
    tps: Number(out.match(/tps = ([\d.]+)/)?.[1] ?? 0),
    transactions: Number(out.match(/number of transactions actually processed: (\d+)/)?.[1] ?? 0),
  };
}
