/**
 * Gateways: batches of readings (JSON array, NDJSON, gzip), all or nothing,
 * the newest observation wins, Idempotency-Key, dry runs, times in responses.
 */
import assert from "node:assert/strict";
import type { Sql } from "postgres";
import { createTestDatabase } from "../support/database.ts";
import { createTestFunction, postRequest } from "../support/function.ts";
import { seedWorkspace } from "../support/seed.ts";

const UTC_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();

/** n readings of temperature, a second apart, the newest a second ago. */
function batch(n: number) {
  return Array.from(
    { length: n },
    (_, i) => ({ observed_at: Date.now() - 1000 * (i + 1), values: { temperature: i } }),
  );
}

async function counts(sql: Sql) {
  const [row] = await sql`select (select count(*)::int from public.datasource_values) as latest,
    (select count(*)::int from public.datasource_readings) as history,
    (select count(*)::int from realtime.messages) as broadcasts`;
  return { ...row };
}

async function latest(sql: Sql): Promise<Record<string, unknown>> {
  const rows = await sql`select data_key, value from public.datasource_values order by data_key`;
  return Object.fromEntries(rows.map((r) => [r.data_key, r.value]));
}

Deno.test("a JSON array of readings: each stored in history, the newest observation of each DataKey is the latest", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  const readings = [
    { observed_at: minutesAgo(2), values: { temperature: 2 } },
    { observed_at: minutesAgo(1), values: { temperature: 1, motor_stats: { rpm: 1, vibration: 1 } } },
    { observed_at: Date.now() - 180_000, values: { temperature: 3, motor_stats: { rpm: 3, vibration: 3 } } },
  ];
  const res = await fn.handle(postRequest(readings, { key: s.apiKey }));
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.readings, 3);
  assert.deepEqual(body.latest, ["motor_stats", "temperature"]);
  assert.match(body.received_at, UTC_MS);
  assert.deepEqual(await latest(db.sql), { temperature: 1, motor_stats: { rpm: 1, vibration: 1 } });
  assert.deepEqual(await counts(db.sql), { latest: 2, history: 5, broadcasts: 1 });
  const [message] = await db.sql`select payload from realtime.messages`;
  assert.deepEqual(message!.payload.values, { temperature: 1, motor_stats: { rpm: 1, vibration: 1 } });

  // Older readings arriving later go to the history only; the response says nothing moved.
  const late = await fn.handle(
    postRequest([{ observed_at: minutesAgo(10), values: { temperature: 9 } }], { key: s.apiKey }),
  );
  assert.deepEqual((await late.json()).latest, []);
  assert.equal((await latest(db.sql)).temperature, 1);
});

Deno.test("NDJSON, and gzip: the same readings, the limit on the decompressed size, 415 for other encodings", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url, { INGEST_MAX_BODY_BYTES: "2000" });
  const ndjson = [1, 2, 3].map((n) => JSON.stringify({ observed_at: minutesAgo(n), values: { temperature: n } }))
    .join("\n") + "\n";
  const send = (body: BodyInit, headers: Record<string, string>) =>
    fn.handle(
      new Request("http://localhost/functions/v1/ingest-data", {
        method: "POST",
        headers: { "X-API-Key": s.apiKey, ...headers },
        body,
      }),
    );
  let res = await send(ndjson, { "Content-Type": "application/x-ndjson" });
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal((await res.json()).readings, 3);
  res = await send(await gzip(ndjson), { "Content-Type": "application/x-ndjson", "Content-Encoding": "gzip" });
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal((await res.json()).readings, 3);
  assert.equal((await latest(db.sql)).temperature, 1);

  // Small compressed, large decompressed: refused as it is read.
  const big = JSON.stringify({ temperature: "x".repeat(3000) });
  res = await send(await gzip(big), { "Content-Type": "application/json", "Content-Encoding": "gzip" });
  assert.equal(res.status, 413);
  assert.equal(
    (await res.json()).message,
    "Payload too large: the limit is 2000 bytes once decompressed (the body is gzip)",
  );
  res = await send(ndjson, { "Content-Type": "application/x-ndjson", "Content-Encoding": "br" });
  const refused = await res.json();
  assert.equal(res.status, 415);
  assert.equal(refused.code, "unsupported_encoding");
  assert.match(refused.message, /gzip/);
  assert.equal(res.headers.get("Accept-Encoding"), "gzip, identity");
  res = await send(new Uint8Array([1, 2, 3]), { "Content-Type": "application/json", "Content-Encoding": "gzip" });
  assert.equal(res.status, 400);
  assert.equal((await counts(db.sql)).history, 6);
});

Deno.test("gzip: concatenated members (RFC 1952) are one body; the compressed size has the body limit too", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url, { INGEST_MAX_BODY_BYTES: "2000" });
  const send = (body: BodyInit, headers: Record<string, string> = {}) =>
    fn.handle(
      new Request("http://localhost/functions/v1/ingest-data", {
        method: "POST",
        headers: {
          "X-API-Key": s.apiKey,
          "Content-Type": "application/x-ndjson",
          "Content-Encoding": "gzip",
          ...headers,
        },
        body,
      }),
    );
  const lines = [1, 2, 3].map((n) => JSON.stringify({ observed_at: minutesAgo(n), values: { temperature: n } }) + "\n");
  // What `cat a.gz b.gz` or a gateway appending to a gzip log sends: one member per line.
  const members = concat(...await Promise.all(lines.map(gzip)));
  let res = await send(members);
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal((await res.json()).readings, 3);

  // Empty stored blocks decompress to nothing: without a limit on the compressed size a client could
  // make the function read any number of bytes. The stream stops being read soon after the limit.
  const json = await gzip(JSON.stringify({ temperature: 1 }));
  const emptyBlocks = new Uint8Array(64 * 1024).map((_, i) => [0, 0, 0, 0xff, 0xff][i % 5]!);
  let pulled = 0, sent = 0;
  const padded = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled++;
      if (sent === 0) controller.enqueue(json.subarray(0, 10)); // the gzip header
      if (sent < 100 * 1024 * 1024) controller.enqueue(emptyBlocks.subarray(0, 65_535)); // whole blocks
      else {
        controller.enqueue(json.subarray(10));
        controller.close();
      }
      sent += 65_535;
    },
  });
  res = await send(padded, { "Content-Type": "application/json" });
  const refused = await res.json();
  assert.equal(res.status, 413, JSON.stringify(refused));
  assert.equal(
    refused.message,
    "Payload too large: the limit is 2000 bytes as sent and once decompressed (the body is gzip)",
  );
  assert.ok(pulled <= 3, `${pulled} chunks read`);
  // The same stream, short enough, is a valid body.
  const short = concat(json.subarray(0, 10), emptyBlocks.subarray(0, 1000), json.subarray(10));
  res = await send(short, { "Content-Type": "application/json" });
  assert.equal(res.status, 200, await res.clone().text());
  // Past the limit as sent, whatever it decompresses to.
  res = await send(concat(json.subarray(0, 10), emptyBlocks.subarray(0, 2500), json.subarray(10)), {
    "Content-Type": "application/json",
  });
  assert.equal(res.status, 413);
  assert.equal((await counts(db.sql)).history, 4);
});

async function gzip(text: string): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(
    await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
  );
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  parts.reduce((offset, p) => (all.set(p, offset), offset + p.byteLength), 0);
  return all;
}

Deno.test("all or nothing: one bad reading is a 400 with paths from the reading's index; nothing written", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  const readings = [
    { observed_at: minutesAgo(1), values: { temperature: 1 } },
    { observed_at: minutesAgo(1), values: { temperature: 1 } },
    { observed_at: minutesAgo(1), values: { temperature: 1 } },
    { observed_at: minutesAgo(1), values: { motor_stats: { rpm: "fast", vibration: true } } },
    { observed_at: "2026-02-30T00:00:00Z", values: { temperature: 1 } },
    { observed_at: 1795683600, values: { temperature: 1 } },
    { values: { temperature: 1 } },
    { observed_at: minutesAgo(1), values: { temperature: 1 }, extra: 1 },
    42,
  ];
  const res = await fn.handle(postRequest(readings, { key: s.apiKey }));
  const body = await res.json();
  assert.equal(res.status, 400);
  assert.equal(body.code, "invalid_payload");
  assert.deepEqual(body.issues.map((i: { path: string }) => i.path), [
    "3.values.motor_stats.vibration",
    "4.observed_at",
    "5.observed_at",
    "6.observed_at",
    "7.extra",
    "8",
  ]);
  assert.match(body.message, /^Cannot parse payload: "3\.values\.motor_stats\.vibration" must be a number or a string/);
  assert.match(body.issues[1].message, /^"4\.observed_at" is not a date that exists/);
  assert.match(body.issues[2].message, /looks like epoch seconds/);
  assert.deepEqual(await counts(db.sql), { latest: 0, history: 0, broadcasts: 0 });

  const tooMany = await fn.handle(
    postRequest(readings.slice(0, 3), { key: s.apiKey, query: "?observed_at=" + Date.now() }),
  );
  assert.equal(tooMany.status, 400);
  const empty = await fn.handle(postRequest([], { key: s.apiKey }));
  assert.equal(empty.status, 400);
});

Deno.test("INGEST_MAX_READINGS and the readings rate limit: a batch takes its readings from their own bucket", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url, {
    INGEST_MAX_READINGS: "50",
    INGEST_RATE_LIMIT_PER_SECOND: "1",
    INGEST_RATE_LIMIT_BURST: "3",
    INGEST_RATE_LIMIT_READINGS_PER_SECOND: "10",
    INGEST_RATE_LIMIT_READINGS_BURST: "60",
  });
  const over = await fn.handle(postRequest(batch(51), { key: s.apiKey }));
  assert.equal(over.status, 400);
  assert.equal((await over.json()).code, "limit_exceeded");
  // 50 readings fit in the readings bucket although the request bucket holds 3.
  assert.equal((await fn.handle(postRequest(batch(50), { key: s.apiKey }))).status, 200);
  const limited = await fn.handle(postRequest(batch(50), { key: s.apiKey }));
  assert.equal(limited.status, 429);
  assert.ok(Number(limited.headers.get("Retry-After")) >= 4);
  assert.equal(limited.headers.get("X-RateLimit-Limit"), "60");
  assert.ok(Number(limited.headers.get("X-RateLimit-Remaining")) < 50);
  assert.ok(Number(limited.headers.get("X-RateLimit-Reset")) >= 4);
  assert.equal((await counts(db.sql)).history, 50);
});

Deno.test("a key with its own rate_limit gets a readings bucket scaled like the defaults", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  // Defaults: 100 requests/s (burst 200), 1,000 readings/s (burst 2,000): ten readings per request.
  await using fn = createTestFunction(db.url, {
    INGEST_MAX_READINGS: "50",
    INGEST_RATE_LIMIT_READINGS_BURST: "2000",
  });
  await db.sql`update public.datasource_api_keys set rate_limit_per_second = 1, rate_limit_burst = 5
    where id = ${s.keyId}`;
  // So this key: 10 readings/s, burst 50 (its 5 × 10, and a full batch fits).
  assert.equal((await fn.handle(postRequest(batch(50), { key: s.apiKey }))).status, 200);
  const limited = await fn.handle(postRequest(batch(50), { key: s.apiKey }));
  const body = await limited.json();
  assert.equal(limited.status, 429, JSON.stringify(body));
  assert.match(body.message, /^Too many readings: this key may send 10 readings a second in batches/);
  assert.equal(limited.headers.get("X-RateLimit-Limit"), "50");
  assert.ok(Number(limited.headers.get("Retry-After")) >= 4);
  assert.equal((await counts(db.sql)).history, 50);
});

Deno.test("Idempotency-Key: a retry replays the answer and stores nothing; another body is a 422", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  const headers = { "Idempotency-Key": "gw-7f3a-0001" };
  const readings = [{ observed_at: minutesAgo(1), values: { temperature: 20 } }];
  const first = await fn.handle(postRequest(readings, { key: s.apiKey, headers }));
  const firstBody = await first.json();
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("Idempotent-Replayed"), null);
  for (let i = 0; i < 3; i++) {
    const again = await fn.handle(postRequest(readings, { key: s.apiKey, headers }));
    assert.equal(again.status, 200);
    assert.equal(again.headers.get("Idempotent-Replayed"), "true");
    assert.deepEqual(await again.json(), firstBody);
  }
  const other = await fn.handle(
    postRequest([{ ...readings[0], values: { temperature: 21 } }], { key: s.apiKey, headers }),
  );
  assert.equal(other.status, 422);
  assert.equal((await other.json()).code, "idempotency_key_reused");
  assert.deepEqual(await counts(db.sql), { latest: 1, history: 1, broadcasts: 1 });

  // A single payload with a key, and the same key on another API key: scoped to the API key.
  const single = {
    key: s.apiKey,
    headers: { "Idempotency-Key": "single-1" },
    query: `?observed_at=${minutesAgo(0.5)}`,
  };
  const a = await fn.handle(postRequest({ temperature: 22 }, single));
  const aBody = await a.json();
  const b = await fn.handle(postRequest({ temperature: 22 }, single));
  assert.equal(b.headers.get("Idempotent-Replayed"), "true");
  assert.deepEqual(await b.json(), aBody);
  assert.deepEqual(aBody.stored, ["temperature"]);
  assert.match(aBody.observed_at, UTC_MS);
  const bad = await fn.handle(
    postRequest({ temperature: 22 }, { key: s.apiKey, headers: { "Idempotency-Key": "a b" } }),
  );
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).code, "invalid_idempotency_key");
  assert.equal((await counts(db.sql)).history, 2);
});

Deno.test("Idempotency-Key: the same text sent as NDJSON and then as JSON is a 422, never a replay", async () => {
  await using db = await createTestDatabase();
  // DataKeys that make one text valid both ways: as NDJSON one reading of temperature and humidity,
  // as JSON a single payload of the DataKeys observed_at and values.
  const s = await seedWorkspace(db.sql, {
    widgets: [
      { name: "T", widget_type: "SingleData", data_key: "temperature", settings: {} },
      { name: "H", widget_type: "SingleData", data_key: "humidity", settings: {} },
      { name: "O", widget_type: "SingleData", data_key: "observed_at", settings: {} },
      {
        name: "V",
        widget_type: "DoubleData",
        data_key: "values",
        settings: { primarySubKey: "temperature", secondarySubKey: "humidity" },
      },
    ],
  });
  await using fn = createTestFunction(db.url);
  const text = JSON.stringify({ observed_at: Date.now() - 60_000, values: { temperature: 1, humidity: 2 } });
  const send = (type: string) =>
    fn.handle(postRequest(text, { key: s.apiKey, headers: { "Content-Type": type, "Idempotency-Key": "both-ways" } }));
  const ndjson = await send("application/x-ndjson");
  assert.equal(ndjson.status, 200, await ndjson.clone().text());
  assert.equal((await ndjson.json()).readings, 1);
  const json = await send("application/json");
  const body = await json.json();
  assert.equal(json.status, 422, JSON.stringify(body));
  assert.equal(body.code, "idempotency_key_reused");
  assert.equal(json.headers.get("Idempotent-Replayed"), null);
  assert.deepEqual(Object.keys(await latest(db.sql)).sort(), ["humidity", "temperature"]);
  // The other way round, with a new key: the JSON request is stored, the NDJSON retry is refused.
  const other = (type: string) =>
    fn.handle(postRequest(text, { key: s.apiKey, headers: { "Content-Type": type, "Idempotency-Key": "json-first" } }));
  assert.deepEqual((await (await other("application/json")).json()).stored, ["observed_at", "values"]);
  assert.equal((await other("application/x-ndjson")).status, 422);
  assert.equal((await other("application/json")).headers.get("Idempotent-Replayed"), "true");
});

Deno.test("Idempotency-Key: the same request sent many times at once is stored once", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  // Two function instances on one database, as on Supabase: the database decides.
  await using one = createTestFunction(db.url);
  await using two = createTestFunction(db.url);
  for (let round = 0; round < 5; round++) {
    const headers = { "Idempotency-Key": `burst-${round}` };
    const readings = [1, 2].map((n) => ({
      observed_at: Date.now() - n * 1000 - round * 10_000,
      values: { temperature: n },
    }));
    const responses = await Promise.all(
      Array.from(
        { length: 8 },
        (_, i) => (i % 2 ? one : two).handle(postRequest(readings, { key: s.apiKey, headers })),
      ),
    );
    const statuses = responses.map((r) => r.status);
    assert.ok(statuses.every((st) => st === 200 || st === 409), statuses.join());
    assert.equal(responses.filter((r) => r.status === 200 && !r.headers.get("Idempotent-Replayed")).length, 1);
    for (const r of responses) if (r.status === 409) assert.equal(r.headers.get("Retry-After"), "1");
  }
  assert.equal((await counts(db.sql)).history, 10);
});

Deno.test("?dry_run=true checks everything and answers like a POST, but writes and broadcasts nothing", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  const single = await fn.handle(postRequest({ temperature: 1 }, { key: s.apiKey, query: "?dry_run=true" }));
  const body = await single.json();
  assert.equal(single.status, 200);
  assert.equal(body.dry_run, true);
  assert.deepEqual(body.stored, ["temperature"]);
  assert.match(body.observed_at, UTC_MS);
  const batch = await fn.handle(
    postRequest([{ observed_at: minutesAgo(1), values: { temperature: 1 } }], {
      key: s.apiKey,
      query: "?dry_run=true",
    }),
  );
  assert.deepEqual({ ...(await batch.json()), received_at: "" }, {
    ok: true,
    datasource_id: s.datasourceId,
    dry_run: true,
    readings: 1,
    received_at: "",
  });
  const invalid = await fn.handle(postRequest({ temperature: true }, { key: s.apiKey, query: "?dry_run=true" }));
  assert.equal(invalid.status, 400);
  const idempotent = await fn.handle(
    postRequest({ temperature: 1 }, { key: s.apiKey, query: "?dry_run=true", headers: { "Idempotency-Key": "k" } }),
  );
  assert.equal(idempotent.status, 200);
  assert.deepEqual(await counts(db.sql), { latest: 0, history: 0, broadcasts: 0 });
  // The dry run recorded no Idempotency-Key: the real request is stored.
  const real = await fn.handle(postRequest({ temperature: 1 }, { key: s.apiKey, headers: { "Idempotency-Key": "k" } }));
  assert.equal(real.headers.get("Idempotent-Replayed"), null);
  assert.equal((await counts(db.sql)).history, 1);
});

Deno.test("?dry_run accepts exactly what docs/api.md says: true or false, once", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  const post = (query: string) => fn.handle(postRequest({ temperature: 1 }, { key: s.apiKey, query }));
  const dry = await post("?dry_run=true");
  assert.equal((await dry.json()).dry_run, true);
  const real = await post("?dry_run=false");
  assert.equal(real.status, 200);
  assert.equal((await real.json()).dry_run, undefined);
  for (
    const query of [
      "?dry_run",
      "?dry_run=",
      "?dry_run=1",
      "?dry_run=0",
      "?dry_run=TRUE",
      "?dry_run=yes",
      "?dry_run=true&dry_run=false",
    ]
  ) {
    const res = await post(query);
    const body = await res.json();
    assert.equal(res.status, 400, query);
    assert.equal(body.code, "invalid_query", query);
    assert.match(body.message, /^Cannot parse dry_run: .* must be true or false/, query);
  }
  assert.equal((await counts(db.sql)).history, 1, "only ?dry_run=false stored");
  // The table of docs/api.md says the same.
  const doc = await Deno.readTextFile(new URL("../../docs/api.md", import.meta.url));
  assert.match(doc, /\| `invalid_query` +\| `\?dry_run=` is anything but `true` or `false`, or is sent twice +\|/);
});

Deno.test("?observed_at= follows the time rules, and a + turned into a space says to URL-encode it", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  const post = (query: string) => fn.handle(postRequest({ temperature: 1 }, { key: s.apiKey, query }));
  const spaced = await post("?observed_at=2026-11-26T10:00:00+01:00");
  const body = await spaced.json();
  assert.equal(spaced.status, 400);
  assert.match(body.message, /URL-encode/);
  assert.equal(body.issues[0].path, "observed_at");
  for (const raw of ["2026-02-30T00:00:00Z", "2026-11-26T10:00:00", "1795683600"]) {
    assert.equal((await post(`?observed_at=${raw}`)).status, 400, raw);
  }
  const ms = Date.now() - 60_000;
  const ok = await post(`?observed_at=${ms}`);
  const okBody = await ok.json();
  assert.equal(ok.status, 200);
  assert.equal(okBody.observed_at, new Date(ms).toISOString());
  assert.match(okBody.received_at, UTC_MS);
});
