/**
 * Property tests of gateway batches on the real database: order and split
 * never change the outcome; a retried request is stored once.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Sql } from "postgres";
import { createApiKey, createDatasource, createWorkspace } from "../../local/provisioning.ts";
import { createTestDatabase } from "../support/database.ts";
import { createTestFunction, postRequest } from "../support/function.ts";

interface Reading {
  observed_at: number;
  values: Record<string, unknown>;
}

/** Readings at distinct times within the last hour, each with one or both of two DataKeys. */
const readingsArb = fc.uniqueArray(fc.integer({ min: 1, max: 3_600_000 }), { minLength: 1, maxLength: 30 }).chain((
  ages,
) =>
  fc.tuple(
    ...ages.map((age) =>
      fc.record({
        temperature: fc.option(fc.integer({ min: -50, max: 150 }), { nil: undefined }),
        motor_stats: fc.option(fc.record({ rpm: fc.nat(5000), vibration: fc.nat(100) }), { nil: undefined }),
      }).map((v) => {
        const values = Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined));
        return { age, values: Object.keys(values).length > 0 ? values : { temperature: 0 } };
      })
    ),
  )
);

async function setUp(sql: Sql): Promise<{ datasourceId: string; apiKey: string }> {
  const datasourceId = await createDatasource(sql, await createWorkspace(sql, "Gateway"));
  return { datasourceId, apiKey: (await createApiKey(sql, datasourceId)).apiKey };
}

async function stored(sql: Sql, datasourceId: string) {
  const latest = await sql`select data_key, value, observed_at from public.datasource_values
    where datasource_id = ${datasourceId} order by data_key`;
  const history = await sql`select data_key, value, observed_at from public.datasource_readings
    where datasource_id = ${datasourceId}`;
  const row = (r: import("postgres").Row) => JSON.stringify([r.data_key, r.value, (r.observed_at as Date).getTime()]);
  return { latest: latest.map(row), history: history.map(row).sort() };
}

/** What any order and split must leave: the newest observation of each DataKey, and every reading. */
function expected(readings: Reading[]) {
  const latest = new Map<string, string>();
  const newest = new Map<string, number>();
  const history: string[] = [];
  for (const r of readings) {
    for (const [key, value] of Object.entries(r.values)) {
      history.push(JSON.stringify([key, value, r.observed_at]));
      if ((newest.get(key) ?? -Infinity) < r.observed_at) {
        newest.set(key, r.observed_at);
        latest.set(key, JSON.stringify([key, value, r.observed_at]));
      }
    }
  }
  return { latest: [...latest.keys()].sort().map((k) => latest.get(k)!), history: history.sort() };
}

Deno.test("property: any batch, in any order and split into any requests, leaves the same latest values and history", async () => {
  await using db = await createTestDatabase();
  await using fn = createTestFunction(db.url, { INGEST_RATE_LIMIT_PER_SECOND: "0" });
  const now = Date.now();
  await fc.assert(
    fc.asyncProperty(
      readingsArb,
      fc.infiniteStream(fc.nat(1000)),
      fc.array(fc.nat(29), { maxLength: 5 }),
      fc.boolean(),
      async (generated, shuffle, cuts, concurrent) => {
        const readings: Reading[] = generated.map(({ age, values }) => ({ observed_at: now - age, values }));
        const keys = [...shuffle.take(readings.length)];
        const order = readings.map((r, i) => ({ r, k: keys[i]! })).sort((a, b) => a.k - b.k).map((x) => x.r);
        const bounds = [...new Set([0, ...cuts.filter((c) => c < order.length), order.length])].sort((a, b) => a - b);
        const requests = bounds.slice(1).map((end, i) => order.slice(bounds[i], end)).filter((p) => p.length > 0);
        const { datasourceId, apiKey } = await setUp(db.sql);
        // ISO strings and epoch milliseconds alike.
        const send = (part: Reading[]) =>
          fn.handle(postRequest(
            part.map((r, i) => ({ ...r, observed_at: i % 2 ? new Date(r.observed_at).toISOString() : r.observed_at })),
            { key: apiKey },
          )).then((res) => res.status);
        const statuses = concurrent ? await Promise.all(requests.map(send)) : [];
        if (!concurrent) { for (const part of requests) statuses.push(await send(part)); }
        assert.ok(statuses.every((s) => s === 200), statuses.join());
        assert.deepEqual(await stored(db.sql, datasourceId), expected(readings));
      },
    ),
    { numRuns: 25 },
  );
});

Deno.test("property: a request retried with the same Idempotency-Key, in sequence or at once, is stored once", async () => {
  await using db = await createTestDatabase();
  await using one = createTestFunction(db.url, { INGEST_RATE_LIMIT_PER_SECOND: "0" });
  await using two = createTestFunction(db.url, { INGEST_RATE_LIMIT_PER_SECOND: "0" });
  const now = Date.now();
  let n = 0;
  await fc.assert(
    fc.asyncProperty(
      readingsArb,
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 6 }),
      async (generated, sequential, atOnce) => {
        const readings = generated.map(({ age, values }) => ({ observed_at: now - age, values }));
        const { datasourceId, apiKey } = await setUp(db.sql);
        const headers = { "Idempotency-Key": `retry-${++n}` };
        const send = (i: number) => (i % 2 ? one : two).handle(postRequest(readings, { key: apiKey, headers }));
        const answers: Response[] = [];
        for (let i = 0; i < sequential; i++) answers.push(await send(i));
        answers.push(...await Promise.all(Array.from({ length: atOnce }, (_, i) => send(i))));
        const statuses = answers.map((r) => r.status);
        assert.ok(statuses.every((s) => s === 200 || s === 409), statuses.join());
        assert.equal(answers.filter((r) => r.status === 200 && !r.headers.get("Idempotent-Replayed")).length, 1);
        const bodies = await Promise.all(answers.filter((r) => r.status === 200).map((r) => r.json()));
        for (const body of bodies) assert.deepEqual(body, bodies[0]);
        assert.deepEqual(await stored(db.sql, datasourceId), expected(readings));
      },
    ),
    { numRuns: 20 },
  );
});
