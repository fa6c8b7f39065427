/** POST: validation against the widgets, storage, and the documented responses. */
import assert from "node:assert/strict";
import { createTestDatabase } from "../support/database.ts";
import { createTestFunction, DOC_PAYLOADS, ENDPOINT, postRequest } from "../support/function.ts";
import { seedWorkspace } from "../support/seed.ts";

Deno.test("the documentation's four payloads, verbatim, are stored", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  for (const [name, payload] of Object.entries(DOC_PAYLOADS)) {
    const res = await fn.handle(postRequest(payload, { key: s.apiKey, header: "bearer" }));
    const body = await res.json();
    assert.equal(res.status, 200, `${name}: ${JSON.stringify(body)}`);
    assert.equal(body.ok, true);
    assert.equal(body.datasource_id, s.datasourceId);
    assert.deepEqual(body.stored, Object.keys(JSON.parse(payload)).sort());
  }
  const values = await db.sql`select data_key, value from public.datasource_values order by data_key`;
  assert.deepEqual(Object.fromEntries(values.map((r) => [r.data_key, r.value])), JSON.parse(DOC_PAYLOADS.combined));
  const [history] = await db.sql`select count(*)::int as n from public.datasource_readings`;
  assert.equal(history!.n, 6);
});

const INVALID: [string, unknown, string][] = [
  ["SingleData boolean", { temperature: true }, "temperature"],
  ["SingleData null", { temperature: null }, "temperature"],
  ["SingleData object", { temperature: { c: 1 } }, "temperature"],
  ["SingleData array", { temperature: [1] }, "temperature"],
  ["DoubleData missing sub-key", { motor_stats: { rpm: 1500 } }, "motor_stats.vibration"],
  ["DoubleData extra sub-key", { motor_stats: { rpm: 1, vibration: 2, temp: 3 } }, "motor_stats.temp"],
  ["DoubleData boolean sub-key", { motor_stats: { rpm: false, vibration: 2 } }, "motor_stats.rpm"],
  ["DoubleData scalar", { motor_stats: 1500 }, "motor_stats"],
  [
    "chart unequal lengths",
    { production_output: { machines: ["A", "B"], units_per_hour: [1] } },
    "production_output.units_per_hour",
  ],
  [
    "chart string value",
    { production_output: { machines: ["A"], units_per_hour: ["1"] } },
    "production_output.units_per_hour.0",
  ],
  [
    "chart null label",
    { production_output: { machines: [null], units_per_hour: [1] } },
    "production_output.machines.0",
  ],
  [
    "chart labels not an array",
    { production_output: { machines: "A", units_per_hour: [1] } },
    "production_output.machines",
  ],
  ["chart missing values", { production_output: { machines: ["A"] } }, "production_output.units_per_hour"],
  ["unknown DataKey", { humidity: 40 }, "humidity"],
  ["empty object", {}, ""],
  ["array of payloads, not readings", [{ temperature: 1 }], "0.temperature"],
  ["string", '"temperature"', ""],
  ["number", 42, ""],
  ["null", null, ""],
];

Deno.test("each invalid payload is a 400 naming the path and what was expected; nothing written", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  for (const [label, payload, path] of INVALID) {
    const res = await fn.handle(postRequest(payload, { key: s.apiKey }));
    const body = await res.json();
    assert.equal(res.status, 400, label);
    assert.equal(body.code, "invalid_payload", label);
    assert.ok(body.issues.length > 0, label);
    assert.equal(body.issues[0].path, path, label);
    assert.ok(body.issues[0].expected, label);
    assert.match(body.message, /^Cannot parse payload: /, label);
    assert.equal(body.request_id, res.headers.get("X-Request-Id"));
  }
  const [counts] = await db.sql`select (select count(*)::int from public.datasource_values) as v,
    (select count(*)::int from public.datasource_readings) as r, (select count(*)::int from realtime.messages) as m`;
  assert.deepEqual({ ...counts }, { v: 0, r: 0, m: 0 });
});

Deno.test("the error message names the path like the style guide says", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  const res = await fn.handle(postRequest({ motor_stats: { rpm: true, vibration: 1 } }, { key: s.apiKey }));
  const body = await res.json();
  assert.equal(body.message, 'Cannot parse payload: "motor_stats.rpm" must be a number or a string');
  assert.deepEqual(body.issues, [{
    path: "motor_stats.rpm",
    expected: "a number or a string",
    message: '"motor_stats.rpm" must be a number or a string',
  }]);
});

Deno.test("one bad DataKey among good ones: 400 and nothing of the request is written", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  const payload = { ...JSON.parse(DOC_PAYLOADS.combined), motor_stats: { rpm: 1500 } };
  const res = await fn.handle(postRequest(payload, { key: s.apiKey }));
  assert.equal(res.status, 400);
  await res.body?.cancel();
  const [count] = await db.sql`select count(*)::int as n from public.datasource_values`;
  assert.equal(count!.n, 0);
});

Deno.test("invalid JSON and an empty body are 400 invalid_json", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  for (const body of ['{"temperature": 42.5', "", "   ", "{'temperature': 1}", "NaN"]) {
    const res = await fn.handle(postRequest(body, { key: s.apiKey }));
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal((await res.json()).code, "invalid_json");
  }
});

Deno.test('values are not coerced: "042" stays a string, 1e3 stays a number', async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  const res = await fn.handle(postRequest('{"temperature": "042", "motor_stats": {"rpm": 1e3, "vibration": "0.75"}}', {
    key: s.apiKey,
  }));
  assert.equal(res.status, 200);
  await res.body?.cancel();
  const rows = await db.sql`select data_key, value from public.datasource_values order by data_key`;
  assert.deepEqual(rows.map((r) => r.value), [{ rpm: 1000, vibration: "0.75" }, "042"]);
});

Deno.test("a DataKey shared by several widgets must satisfy all of them", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql, {
    widgets: [
      { name: "bar", widget_type: "BarChart", data_key: "output", settings: { labelsKey: "m", valuesKey: "u" } },
      { name: "line", widget_type: "LineChart", data_key: "output", settings: { labelsKey: "m", valuesKey: "u" } },
      { name: "gauge", widget_type: "SingleData", data_key: "level", settings: {} },
      {
        name: "a",
        widget_type: "DoubleData",
        data_key: "pair",
        settings: { primarySubKey: "x", secondarySubKey: "y" },
      },
      {
        name: "b",
        widget_type: "DoubleData",
        data_key: "pair",
        settings: { primarySubKey: "x", secondarySubKey: "z" },
      },
    ],
  });
  await using fn = createTestFunction(db.url);
  const ok = await fn.handle(postRequest({ output: { m: ["A"], u: [1] } }, { key: s.apiKey }));
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
  // No object has exactly {x, y} and exactly {x, z}: each shape fails the other widget.
  for (const [value, missing] of [[{ x: 1, y: 2 }, "pair.z"], [{ x: 1, z: 2 }, "pair.y"]] as const) {
    const pair = await fn.handle(postRequest({ pair: value }, { key: s.apiKey }));
    assert.equal(pair.status, 400);
    assert.equal((await pair.json()).issues[0].path, missing);
  }
  const level = await fn.handle(postRequest({ level: 3, output: { m: ["A", "B"], u: [1] } }, { key: s.apiKey }));
  assert.equal(level.status, 400);
  await level.body?.cancel();
});

Deno.test("observed_at: older observations do not replace newer ones; a bad date is a 400", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  const newer = await fn.handle(
    postRequest({ temperature: 2 }, { key: s.apiKey, query: "?observed_at=2026-01-01T00:00:10Z" }),
  );
  assert.equal((await newer.json()).observed_at.slice(0, 19), "2026-01-01T00:00:10");
  const older = await fn.handle(
    postRequest({ temperature: 1 }, { key: s.apiKey, query: "?observed_at=2026-01-01T00:00:00Z" }),
  );
  const body = await older.json();
  assert.equal(older.status, 200);
  assert.deepEqual(body.superseded, ["temperature"]);
  const [latest] = await db.sql`select value from public.datasource_values`;
  assert.equal(latest!.value, 2);
  for (const bad of ["yesterday", "2026-13-45T00:00:00Z", new Date(Date.now() + 3600_000).toISOString()]) {
    const res = await fn.handle(postRequest({ temperature: 3 }, { key: s.apiKey, query: `?observed_at=${bad}` }));
    assert.equal(res.status, 400, bad);
    assert.equal((await res.json()).code, "invalid_observed_at");
  }
});

Deno.test("413 past the body limit, whether declared or streamed; nothing written", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url, { INGEST_MAX_BODY_BYTES: "100" });
  const big = JSON.stringify({ temperature: "x".repeat(200) });
  const declared = await fn.handle(postRequest(big, { key: s.apiKey }));
  assert.equal(declared.status, 413);
  const refused = await declared.json();
  assert.equal(refused.code, "payload_too_large");
  assert.equal(refused.message, "Payload too large: the limit is 100 bytes");
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < 10; i++) {
        controller.enqueue(new TextEncoder().encode(i === 0 ? '{"temperature":"' : "x".repeat(50)));
      }
      controller.close();
    },
  });
  const streamed = await fn.handle(
    new Request(ENDPOINT, { method: "POST", headers: { "X-API-Key": s.apiKey }, body: stream }),
  );
  assert.equal(streamed.status, 413);
  await streamed.body?.cancel();
  const [count] = await db.sql`select count(*)::int as n from public.datasource_values`;
  assert.equal(count!.n, 0);
});

Deno.test("503 with Retry-After when the database cannot be reached", async () => {
  const listener = Deno.listen({ port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close(); // nothing listens there now
  await using fn = createTestFunction(`postgres://postgres@127.0.0.1:${port}/postgres`);
  const res = await fn.handle(postRequest({ temperature: 1 }, { key: "tw_" + "b".repeat(64) }));
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("Retry-After"), "5");
  assert.equal((await res.json()).code, "service_unavailable");
});

Deno.test("500 with a generic message for an unexpected database error; no SQL leaks", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql.unsafe(`
    create function public.break_history() returns trigger language plpgsql set search_path = '' as
    $$ begin raise exception 'secret internal detail from SQL'; end $$;
    create trigger break_history before insert on public.datasource_readings
    for each row execute function public.break_history();`);
  await using fn = createTestFunction(db.url);
  const res = await fn.handle(postRequest({ temperature: 1 }, { key: s.apiKey }));
  assert.equal(res.status, 500);
  const text = await res.text();
  assert.equal(JSON.parse(text).code, "internal_error");
  assert.ok(!text.includes("secret") && !text.includes("SQL"), text);
  assert.ok(!JSON.stringify(fn.logs).includes("secret internal detail"), "log leaks the database message");
  assert.equal(fn.logs.at(-1)?.status, 500);
});

Deno.test("one log line per request: id, method, status, duration, datasource; never the key or values", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  const res = await fn.handle(postRequest({ temperature: "very-secret-reading" }, { key: s.apiKey }));
  await res.body?.cancel();
  assert.equal(fn.logs.length, 1);
  const line = fn.logs[0]!;
  assert.equal(line.request_id, res.headers.get("X-Request-Id"));
  assert.equal(line.method, "POST");
  assert.equal(line.status, 200);
  assert.equal(line.datasource_id, s.datasourceId);
  assert.equal(typeof line.duration_ms, "number");
  assert.equal(line.dry_run, undefined);
  // A dry run's line says so: it stored nothing although it answered 200.
  const dry = await fn.handle(postRequest({ temperature: 1 }, { key: s.apiKey, query: "?dry_run=true" }));
  assert.equal(dry.status, 200);
  await dry.body?.cancel();
  assert.equal(fn.logs[1]!.status, 200);
  assert.equal(fn.logs[1]!.dry_run, true);
  const text = JSON.stringify(fn.logs);
  assert.ok(!text.includes(s.apiKey.slice(3, 20)) && !text.includes("very-secret-reading"));
});

Deno.test("concurrent requests are group-committed: every 200 is stored, each exactly once", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url, { INGEST_DB_POOL_SIZE: "2" });
  const responses = await Promise.all(
    Array.from({ length: 60 }, (_, i) => fn.handle(postRequest({ temperature: i }, { key: s.apiKey }))),
  );
  for (const res of responses) {
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.deepEqual([body.stored, body.superseded], [["temperature"], []]);
    assert.equal(body.observed_at, body.received_at, "observed when received");
  }
  const rows = await db.sql`select value from public.datasource_readings order by (value::text)::int`;
  assert.deepEqual(rows.map((r) => r.value), Array.from({ length: 60 }, (_, i) => i));
  const [txs] = await db.sql`select count(distinct received_at)::int as n from public.datasource_readings`;
  assert.ok(txs!.n < 60, `expected fewer commits than requests, got ${txs!.n}`);
});
