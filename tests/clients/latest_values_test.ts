/**
 * The newest observation wins (clients/latest_values.ts): how a watch merges reads and broadcasts into the latest
 * value of each DataKey, whatever order they arrive in, and drops a broadcast it already applied.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  compare,
  emptyCurrent,
  firstSeen,
  offer,
  offerMessage,
  offerRows,
  utc,
  type ValuesMessage,
} from "../../clients/latest_values.ts";
import type { LatestValue } from "../../clients/watch_datasource.ts";

const T0 = Date.parse("2025-03-01T12:00:00Z");
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();
const latest = (value: number | string, observed: number, received = observed): LatestValue => ({
  value,
  observed_at: at(observed),
  received_at: at(received),
});

Deno.test("utc writes any ISO 8601 time in UTC with Z and milliseconds", () => {
  assert.equal(utc("2025-03-01T13:00:00+01:00"), "2025-03-01T12:00:00.000Z");
  assert.equal(utc("2025-03-01T12:00:00.5Z"), "2025-03-01T12:00:00.500Z");
});

Deno.test("compare orders by observation time, then by arrival", () => {
  assert.ok(compare(latest(1, 10), latest(1, 20)) < 0);
  assert.ok(compare(latest(1, 20, 21), latest(1, 10, 30)) > 0, "observed later wins over arrived later");
  assert.ok(compare(latest(1, 10, 12), latest(1, 10, 11)) > 0);
  assert.equal(compare(latest(1, 10), latest(2, 10)), 0);
});

Deno.test("offer keeps the newer observation; a tie goes to the later arrival, not to the same value again", () => {
  const current = emptyCurrent();
  assert.equal(offer(current, "t", latest(1, 10)), true);
  assert.equal(offer(current, "t", latest(2, 5)), false, "older observation");
  assert.deepEqual(current.t, latest(1, 10));
  assert.equal(offer(current, "t", latest(1, 10)), false, "same observation, same value");
  assert.equal(offer(current, "t", latest(3, 10, 11)), true, "same observation, later arrival");
  assert.equal(offer(current, "t", latest(4, 10, 10)), false, "same observation, earlier arrival");
  assert.equal(offer(current, "t", latest(5, 10, 11)), true, "a full tie with another value replaces it");
  assert.equal(offer(current, "other", latest(7, 0)), true, "each DataKey on its own");
  assert.deepEqual(Object.keys(current), ["t", "other"]);
  assert.equal(Object.getPrototypeOf(current), null);
});

Deno.test("offers in any order end at the newest observation of each DataKey", () => {
  const observation = fc.record({
    dataKey: fc.constantFrom("a", "b", "c"),
    value: fc.integer({ min: 0, max: 3 }),
    observed: fc.integer({ min: 0, max: 5 }),
    received: fc.integer({ min: 0, max: 5 }),
  });
  fc.assert(fc.property(fc.array(observation, { maxLength: 12 }), (offers) => {
    const current = emptyCurrent();
    for (const o of offers) offer(current, o.dataKey, latest(o.value, o.observed, o.received));
    for (const key of ["a", "b", "c"]) {
      const own = offers.filter((o) => o.dataKey === key).map((o) => latest(o.value, o.observed, o.received));
      if (own.length === 0) assert.equal(current[key], undefined);
      else assert.equal(compare(current[key]!, own.reduce((a, b) => compare(a, b) >= 0 ? a : b)), 0);
    }
  }));
});

Deno.test("offerRows takes a read's rows in UTC and returns the DataKeys that changed", () => {
  const current = emptyCurrent();
  offer(current, "kept", latest(9, 50));
  const rows = [
    { data_key: "t", value: 21, observed_at: "2025-03-01T13:00:10+01:00", received_at: at(11) },
    { data_key: "kept", value: 1, observed_at: at(40), received_at: at(41) },
  ];
  assert.deepEqual(offerRows(current, rows), ["t"]);
  assert.deepEqual(current.t, { value: 21, observed_at: at(10), received_at: at(11) });
  assert.deepEqual(offerRows(current, rows), [], "read again: nothing changed");
});

Deno.test("offerMessage: each DataKey's own time, else the message's, else its arrival", () => {
  const message = (extra: Partial<ValuesMessage>): ValuesMessage => ({
    datasource_id: "d",
    received_at: at(30),
    values: { a: 1, b: 2 },
    ...extra,
  });
  const current = emptyCurrent();
  const changed = offerMessage(current, message({ observed_at: at(20), observed_at_by_key: { a: at(10) } }));
  assert.deepEqual(changed, ["a", "b"]);
  assert.equal(current.a!.observed_at, at(10));
  assert.equal(current.b!.observed_at, at(20));
  assert.equal(current.b!.received_at, at(30));

  const older = emptyCurrent();
  offerMessage(older, message({ received_at: "2025-03-01T13:00:40+01:00" }));
  assert.deepEqual(older.a, { value: 1, observed_at: at(40), received_at: at(40) }, "no observation time");
});

Deno.test("offerMessage: a message without a values object changes nothing", () => {
  const current = emptyCurrent();
  const broken = { datasource_id: "d", received_at: at(0), values: null } as unknown as ValuesMessage;
  assert.deepEqual(offerMessage(current, broken), []);
  assert.deepEqual(Object.keys(current), []);
});

Deno.test("firstSeen: an id is applied once; the oldest ids are forgotten beyond the limit", () => {
  const applied = new Set<string>();
  assert.equal(firstSeen(applied, "m1", 2), true);
  assert.equal(firstSeen(applied, "m1", 2), false);
  assert.equal(firstSeen(applied, "m2", 2), true);
  assert.equal(firstSeen(applied, "m3", 2), true);
  assert.deepEqual([...applied], ["m2", "m3"]);
  assert.equal(firstSeen(applied, "m1", 2), true, "forgotten, so applied again");
  assert.equal(firstSeen(applied, "m3", 2), false);
});

Deno.test("firstSeen remembers 1000 ids by default", () => {
  const applied = new Set<string>();
  for (let i = 0; i <= 1000; i++) firstSeen(applied, `m${i}`);
  assert.equal(applied.size, 1000);
  assert.equal(applied.has("m0"), false);
  assert.equal(firstSeen(applied, "m1"), false);
});
