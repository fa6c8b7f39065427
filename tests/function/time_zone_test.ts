/**
 * Times whatever the database's TimeZone (issue 20, finding 2): with the
 * database in Europe/Berlin, a time before 1893 is written by PostgreSQL with
 * a local mean time offset (`+00:53:28`); such a request was stored and then
 * answered 500. Every route (ingest_write, ingest_write_batch for a single
 * payload with an Idempotency-Key, ingest_write_readings) answers 200 with
 * the time in the API's form, in both stores, and the SQL functions answer in
 * that form on a session of any zone (a pooler that drops the store's
 * TimeZone=UTC startup parameter).
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { loadConfig } from "../../supabase/functions/ingest-data/config.ts";
import { createHandler } from "../../supabase/functions/ingest-data/handler.ts";
import { createStore } from "../../supabase/functions/ingest-data/create_store.ts";
import { DEFAULT_JWT_SECRET, serviceRoleKey } from "../../local/jwt.ts";
import { AUTHENTICATOR, connectAuthenticator } from "../../local/authenticator.ts";
import { createRestStandIn } from "../../local/rest_stand_in.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { createTestFunction, postRequest } from "../support/function.ts";
import { type Seeded, seedWorkspace } from "../support/seed.ts";

const ZONE = "Europe/Berlin";
/** Times PostgreSQL writes with an offset of seconds in Berlin, or with a year of fewer than four digits. */
const TIMES = ["1800-01-01T00:00:00.000Z", "0500-06-15T12:30:45.678Z", "0001-01-01T00:00:00.000Z"];
const API_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

type Handle = (request: Request) => Promise<Response>;

/** Posts each time by each route and checks the answers and what was stored. */
async function assertEveryRoute(db: TestDatabase, s: Seeded, handle: Handle): Promise<void> {
  for (const time of TIMES) {
    const query = `?observed_at=${time}`;
    const single = await handle(postRequest({ temperature: 1 }, { key: s.apiKey, query }));
    const body = await single.json();
    assert.equal(single.status, 200, `${time} alone: ${JSON.stringify(body)}`);
    assert.equal(body.observed_at, time);
    assert.match(body.received_at, API_TIME);

    const headers = { "Idempotency-Key": crypto.randomUUID() };
    const keyed = await handle(postRequest({ temperature: 2 }, { key: s.apiKey, query, headers }));
    const keyedBody = await keyed.json();
    assert.equal(keyed.status, 200, `${time} with a key: ${JSON.stringify(keyedBody)}`);
    assert.equal(keyedBody.observed_at, time);
    const replay = await handle(postRequest({ temperature: 2 }, { key: s.apiKey, query, headers }));
    assert.equal(replay.status, 200);
    assert.equal(replay.headers.get("Idempotent-Replayed"), "true");
    assert.deepEqual(await replay.json(), keyedBody);

    const readings = await handle(postRequest([{ observed_at: time, values: { temperature: 3 } }], { key: s.apiKey }));
    const readingsBody = await readings.json();
    assert.equal(readings.status, 200, `${time} as a reading: ${JSON.stringify(readingsBody)}`);
    assert.match(readingsBody.received_at, API_TIME);
  }
  // Read as epoch milliseconds: postgres.js cannot parse the Berlin session's local mean time offsets either.
  const stored = await db.sql`select (extract(epoch from observed_at) * 1000)::float8 as ms
    from public.datasource_readings order by observed_at`;
  assert.deepEqual(
    stored.map((r) => r.ms),
    TIMES.flatMap((t) => [Date.parse(t), Date.parse(t), Date.parse(t)]).sort((a, b) => a - b),
  );
}

Deno.test("postgres store, database in Europe/Berlin: times before 1893 and years before 1000 are answered 200 in UTC", async () => {
  await using db = await createTestDatabase({ timeZone: ZONE });
  const s = await seedWorkspace(db.sql, { keepHistory: true });
  await using fn = createTestFunction(db.url);
  await assertEveryRoute(db, s, fn.handle);
  assert.deepEqual(fn.logs.filter((l) => l.status >= 500), []);
});

Deno.test("supabase store, database in Europe/Berlin: the same times are answered 200 in UTC", async () => {
  await using db = await createTestDatabase({ timeZone: ZONE });
  const s = await seedWorkspace(db.sql, { keepHistory: true });
  const authenticator = connectAuthenticator(db.url, { kind: "login", user: AUTHENTICATOR });
  const rest = createRestStandIn({ authenticator, jwtSecret: DEFAULT_JWT_SECRET });
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, rest);
  const config = loadConfig({
    INGEST_STORE: "supabase",
    SUPABASE_URL: `http://127.0.0.1:${server.addr.port}`,
    SUPABASE_SERVICE_ROLE_KEY: await serviceRoleKey(DEFAULT_JWT_SECRET),
  });
  const handle = createHandler({ config, store: createStore(config.store), log: () => {} });
  try {
    await assertEveryRoute(db, s, handle);
  } finally {
    await authenticator.end();
  }
});

Deno.test("the write functions answer in the API's form on a session in any zone", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const time = "1800-01-01T00:00:00.000Z";
  for (const zone of [ZONE, "America/St_Johns", "Asia/Kathmandu", "UTC"]) {
    const answers = await db.sql.begin(async (tx) => {
      await tx`select set_config('timezone', ${zone}, true)`;
      const [one] = await tx`select public.ingest_write(${s.datasourceId}, ${s.keyId},
        ${tx.json({ temperature: 1 })}, ${time}::timestamptz) as r`;
      const batch = [{ datasource_id: s.datasourceId, key_id: s.keyId, values: { temperature: 2 }, observed_at: time }];
      const [many] = await tx`select public.ingest_write_batch(${tx.json(batch)}) as r`;
      const reading = { t: Date.parse(time), v: { temperature: 3 } };
      const readings = [{ datasource_id: s.datasourceId, key_id: s.keyId, readings: [reading] }];
      const [gateway] = await tx`select public.ingest_write_readings(${tx.json(readings)}) as r`;
      return { one: one!.r, many: many!.r, gateway: gateway!.r };
    });
    assert.equal(answers.one.observed_at, time, zone);
    assert.match(answers.one.received_at, API_TIME, zone);
    assert.match(answers.many.received_at, API_TIME, zone);
    assert.equal(answers.many.results[0].observed_at, time, zone);
    assert.match(answers.gateway.received_at, API_TIME, zone);
    assert.equal(answers.gateway.results[0].observed_at, time, zone);
    assert.equal(answers.gateway.results[0].received_at, answers.gateway.received_at, zone);
  }
});

Deno.test("ingest_write refuses times it cannot answer in the API's form (BC, after 9999, infinite) with PT400", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  for (const time of ["0044-03-15 00:00:00+00 BC", "10000-01-01 00:00:00+00", "infinity", "-infinity"]) {
    const error = await db.sql`select public.ingest_write(${s.datasourceId}, ${s.keyId},
      ${db.sql.json({ temperature: 1 })}, ${time}::text::timestamptz)`.then(() => null, (e) => e);
    assert.equal(error?.code, "PT400", time);
  }
  const [row] = await db.sql`select count(*)::int as n from public.datasource_values`;
  assert.equal(row!.n, 0);
  // The last time it takes, and the first.
  for (const time of ["9999-12-31 23:59:59.999+00", "0001-01-01 00:00:00+00"]) {
    const [ok] = await db.sql`select public.ingest_write(${s.datasourceId}, ${s.keyId},
      ${db.sql.json({ temperature: 1 })}, ${time}::text::timestamptz) as r`;
    assert.match(ok!.r.observed_at, API_TIME);
  }
});

Deno.test("a test database has the zone of the suite's phase (INGEST_TEST_TIMEZONE, else the server's)", async () => {
  await using db = await createTestDatabase();
  const [row] = await db.sql`select current_setting('TimeZone') as zone`;
  const server = postgres(Deno.env.get("INGEST_TEST_SERVER_URL")!, { max: 1 });
  try {
    const [own] = await server`select current_setting('TimeZone') as zone`;
    assert.equal(row!.zone, Deno.env.get("INGEST_TEST_TIMEZONE") ?? own!.zone);
  } finally {
    await server.end();
  }
});
