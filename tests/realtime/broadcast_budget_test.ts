/**
 * The broadcast budget with the real supabase-js on the local stack: a
 * datasource over its broadcasts per second gets coalesced messages and still
 * its newest values within one interval of the last write; one under it gets
 * every value; a project budget is shared; values too large to broadcast are
 * read instead.
 */
import assert from "node:assert/strict";
import { type LatestValue, watchDatasource } from "../../clients/watch_datasource.ts";
import { createTestDatabase } from "../support/database.ts";
import { type Seeded, seedWorkspace } from "../support/seed.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

/** A watch and a raw channel on one datasource: what the dashboard shows, and every message delivered. */
async function subscribe(stack: TestStack, s: Seeded) {
  const token = await stack.tokenFor(s.viewer);
  const shown: { values: Readonly<Record<string, LatestValue>>; at: number }[] = [];
  const watch = watchDatasource(stack.client(() => token), s.datasourceId, {
    onValues: (values) => shown.push({ values, at: performance.now() }),
  });
  const raw = stack.client(() => token);
  const messages: { payload: Record<string, unknown>; at: number }[] = [];
  await raw.realtime.setAuth();
  await new Promise<void>((resolve) =>
    raw.channel(`datasource:${s.datasourceId}`, { config: { private: true } })
      .on("broadcast", { event: "values" }, (m) => messages.push({ payload: m.payload, at: performance.now() }))
      .subscribe((state) => state === "SUBSCRIBED" && resolve())
  );
  await until(() => shown.length > 0, "the first read");
  return {
    shown,
    messages,
    latest: (dataKey: string) => shown.at(-1)?.values[dataKey]?.value,
    stop: () => watch.stop(),
  };
}

async function until(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(20);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** POSTs `temperature: f(i)` for i = 0..count-1, one every `periodMs`; the time of the last 200. */
async function postAtRate(stack: TestStack, s: Seeded, count: number, periodMs: number): Promise<number> {
  const start = performance.now();
  let lastOk = 0;
  for (let i = 0; i < count; i++) {
    await sleep(Math.max(0, start + i * periodMs - performance.now()));
    assert.equal(await stack.post(s.apiKey, { temperature: i }), 200);
    lastOk = performance.now();
  }
  return lastOk;
}

Deno.test("20 Hz for 5 s at 4 broadcasts a second: at most 22 messages, the last value within 0.75 s of its 200; 1 Hz beside it gets every value", async () => {
  await using db = await createTestDatabase();
  const fast = await seedWorkspace(db.sql);
  const slow = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  const fastSide = await subscribe(stack, fast);
  const slowSide = await subscribe(stack, slow);

  const [lastOk] = await Promise.all([postAtRate(stack, fast, 100, 50), postAtRate(stack, slow, 5, 1000)]);
  await until(() => fastSide.latest("temperature") === 99, "the last 20 Hz value", 3000);
  const delay = fastSide.shown.at(-1)!.at - lastOk;
  await until(() => slowSide.latest("temperature") === 4, "the last 1 Hz value", 3000);
  await sleep(600); // anything still pending would arrive now

  console.log(
    `20 Hz: ${fastSide.messages.length} messages for 100 POSTs; the last value ${Math.round(delay)} ms after its 200`,
  );
  assert.ok(fastSide.messages.length <= 22, `${fastSide.messages.length} messages`);
  assert.ok(delay <= 750, `the last value came ${Math.round(delay)} ms after its 200`);
  const slowValues = slowSide.messages.map((m) => (m.payload.values as { temperature: number }).temperature);
  assert.deepEqual(slowValues, [0, 1, 2, 3, 4], "every 1 Hz value, each in its own message");
  await fastSide.stop();
  await slowSide.stop();
});

Deno.test("a project budget of 3 messages a second: two datasources at 20 Hz share it and both end at their newest values", async () => {
  await using db = await createTestDatabase();
  const a = await seedWorkspace(db.sql);
  const b = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url, { env: { INGEST_REALTIME_MAX_MESSAGES_PER_SECOND: "3" } });
  const sides = [await subscribe(stack, a), await subscribe(stack, b)];
  const started = performance.now();
  await Promise.all([postAtRate(stack, a, 60, 50), postAtRate(stack, b, 60, 50)]);
  for (const side of sides) await until(() => side.latest("temperature") === 59, "the newest value", 3000);
  const seconds = (performance.now() - started) / 1000;
  const total = sides.reduce((n, side) => n + side.messages.length, 0);
  console.log(`project budget 3/s: ${total} messages in ${seconds.toFixed(1)} s for 120 POSTs`);
  // Each datasource's own budget alone would send about 4 a second each (24 in 3 s); the first second runs before
  // the flush has counted the active datasources.
  assert.ok(total <= 3 * seconds + 8, `${total} messages in ${seconds.toFixed(1)} s`);
  for (const side of sides) await side.stop();
});

Deno.test("a value larger than a broadcast may carry: the message names it, and the subscriber shows it after reading it", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url, { env: { INGEST_REALTIME_MAX_PAYLOAD_BYTES: "200" } });
  const side = await subscribe(stack, s);
  const machines = Array.from({ length: 20 }, (_, i) => `Machine ${i}`);
  const chart = { machines, units_per_hour: machines.map((_, i) => i) };
  assert.equal(await stack.post(s.apiKey, { production_output: chart }), 200);
  await until(() => JSON.stringify(side.latest("production_output")) === JSON.stringify(chart), "the chart");
  const [message] = side.messages;
  assert.equal(message!.payload.values_omitted, true);
  assert.equal(message!.payload.values, undefined);
  assert.deepEqual(Object.keys(message!.payload.observed_at_by_key as object), ["production_output"]);
  await side.stop();
});
