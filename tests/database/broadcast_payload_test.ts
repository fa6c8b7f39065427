/**
 * The `values` broadcasts (realtime.messages rows) and the first read
 * (datasource_latest_values) write times as the HTTP responses do (UTC, `Z`,
 * milliseconds, cut to the millisecond), and a write that
 * made nothing the latest sends no message.
 */
import assert from "node:assert/strict";
import type { Sql } from "postgres";
import { createTestDatabase } from "../support/database.ts";
import { asRole, type Seeded, seedWorkspace } from "../support/seed.ts";

const API_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

interface Message {
  datasource_id: string;
  observed_at: string;
  received_at: string;
  values: Record<string, unknown>;
  observed_at_by_key?: Record<string, string>;
}

async function messages(sql: Sql, s: Seeded): Promise<Message[]> {
  const rows = await sql`select payload from realtime.messages
    where topic = ${`datasource:${s.datasourceId}`} and event = 'values' order by inserted_at, id`;
  return rows.map((r) => r.payload as Message);
}

/** The stored times of one DataKey as the function's HTTP responses write them. */
async function stored(sql: Sql, s: Seeded, dataKey: string): Promise<{ observed_at: string; received_at: string }> {
  const [row] = await sql`select to_char(observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as o,
      to_char(received_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as r
    from public.datasource_values where datasource_id = ${s.datasourceId} and data_key = ${dataKey}`;
  return { observed_at: row!.o, received_at: row!.r };
}

/** The broadcast budget off (0): one message per commit, so that each commit's payload is seen. */
async function everyCommit(sql: Sql): Promise<void> {
  await sql`update public.datasources set broadcasts_per_second = 0`;
}

function assertApiTimes(message: Message) {
  for (const time of [message.observed_at, message.received_at, ...Object.values(message.observed_at_by_key ?? {})]) {
    assert.match(time, API_TIME);
  }
}

Deno.test("ingest_write: times cut to milliseconds with Z; no message when every value was superseded", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await everyCommit(db.sql);
  const write = (values: object, observedAt: string) =>
    db.sql`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${db.sql.json(values as never)}, ${observedAt})`;
  await write({ temperature: 1, production_output: { labels: ["a"], values: [1] } }, "2026-11-26T10:00:00.123999Z");
  await write({ temperature: 0 }, "2026-11-26T09:00:00Z"); // older: superseded, nothing sent
  await write({ temperature: 2, motor_stats: { rpm: 1, vibration: 2 } }, "2026-11-26T09:30:00.5Z"); // motor_stats only

  const sent = await messages(db.sql, s);
  assert.equal(sent.length, 2, "no message for the superseded write");
  assert.equal(sent[0]!.observed_at, "2026-11-26T10:00:00.123Z");
  assert.deepEqual(sent[1]!.values, { motor_stats: { rpm: 1, vibration: 2 } });
  assert.equal(sent[1]!.observed_at, "2026-11-26T09:30:00.500Z");
  for (const message of sent) assertApiTimes(message);
  assert.equal(sent[1]!.received_at, (await stored(db.sql, s, "motor_stats")).received_at);
});

Deno.test("ingest_write_batch: observed_at and observed_at_by_key per message; no message for a datasource with nothing newer", async () => {
  await using db = await createTestDatabase();
  const a = await seedWorkspace(db.sql);
  const b = await seedWorkspace(db.sql);
  await everyCommit(db.sql);
  const batch = (requests: object[]) => db.sql`select public.ingest_write_batch(${db.sql.json(requests as never)})`;
  const request = (s: Seeded, values: object, observed_at?: string) => ({
    datasource_id: s.datasourceId,
    key_id: s.keyId,
    values,
    ...(observed_at ? { observed_at } : {}),
  });
  await batch([request(b, { temperature: 1 }, "2026-11-26T10:00:00Z")]);
  await batch([
    request(a, { temperature: 1 }, "2026-11-26T10:00:00.1Z"),
    request(a, { motor_stats: { rpm: 1, vibration: 2 } }, "2026-11-26T10:00:01.987654Z"),
    request(a, { temperature: 0 }, "2026-11-26T09:00:00Z"), // older than the batch's own temperature
    request(b, { temperature: 0 }, "2026-11-26T09:00:00Z"), // older than b's stored value: nothing newer
  ]);
  await batch([request(a, { temperature: 3 })]); // observed when received

  assert.equal((await messages(db.sql, b)).length, 1, "b: only the first batch's message");
  const sent = await messages(db.sql, a);
  assert.equal(sent.length, 2);
  for (const message of [...sent, ...await messages(db.sql, b)]) assertApiTimes(message);
  assert.deepEqual(sent[0]!.values, { temperature: 1, motor_stats: { rpm: 1, vibration: 2 } });
  assert.deepEqual(sent[0]!.observed_at_by_key, {
    temperature: "2026-11-26T10:00:00.100Z",
    motor_stats: "2026-11-26T10:00:01.987Z",
  });
  assert.equal(sent[0]!.observed_at, "2026-11-26T10:00:01.987Z");
  const latest = await stored(db.sql, a, "temperature");
  assert.equal(sent[1]!.observed_at, latest.observed_at);
  assert.equal(sent[1]!.received_at, latest.received_at);
  assert.equal(sent[1]!.observed_at_by_key!.temperature, latest.observed_at);
});

Deno.test("ingest_write_readings: times in the API's form; no message for a request whose readings were all older", async () => {
  await using db = await createTestDatabase();
  const a = await seedWorkspace(db.sql);
  const b = await seedWorkspace(db.sql);
  const readings = (requests: object[]) =>
    db.sql`select public.ingest_write_readings(${db.sql.json(requests as never)}) as r`.then((rows) => rows[0]!.r);
  const t = Date.parse("2026-11-26T10:00:00.042Z");
  await readings([{ datasource_id: b.datasourceId, key_id: b.keyId, readings: [{ t, v: { temperature: 1 } }] }]);
  const result = await readings([
    {
      datasource_id: a.datasourceId,
      key_id: a.keyId,
      readings: [{ t, v: { temperature: 1 } }, { v: { temperature: 2 } }],
    },
    { datasource_id: b.datasourceId, key_id: b.keyId, readings: [{ t: t - 1000, v: { temperature: 0 } }] },
  ]);
  assert.deepEqual(result.results[1].latest, [], "b's reading became the latest of nothing");

  assert.equal((await messages(db.sql, b)).length, 1);
  assertApiTimes((await messages(db.sql, b))[0]!);
  assert.equal((await messages(db.sql, b))[0]!.observed_at, "2026-11-26T10:00:00.042Z");
  const [message] = await messages(db.sql, a);
  assertApiTimes(message!);
  assert.deepEqual(message!.values, { temperature: 2 });
  assert.deepEqual(message!.observed_at_by_key, { temperature: (await stored(db.sql, a, "temperature")).observed_at });
});

Deno.test("datasource_latest_values returns the times in the API's form, as the broadcasts carry them", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${
    db.sql.json({ temperature: 1 })
  }, '2026-11-26T10:00:00.999999Z')`;
  const rows = await asRole(
    db.sql,
    { role: "authenticated", userId: s.viewer },
    (tx) => tx`select * from public.datasource_latest_values(${s.datasourceId})`,
  );
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.observed_at, "2026-11-26T10:00:00.999Z");
  const [message] = await messages(db.sql, s);
  assert.equal(rows[0]!.received_at, message!.received_at);
  assert.match(rows[0]!.received_at, API_TIME);
});
