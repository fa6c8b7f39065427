/** Checking a batch of readings: every issue of every reading, paths from the reading's index. */
import assert from "node:assert/strict";
import { HttpError } from "../../supabase/functions/ingest-data/http_error.ts";
import { buildPayloadValidator } from "../../supabase/functions/ingest-data/payload_schema.ts";
import { readReadings } from "../../supabase/functions/ingest-data/readings.ts";
import type { Widget } from "../../supabase/functions/ingest-data/store.ts";
import { DOC_WIDGETS } from "../../local/provisioning.ts";

const validator = buildPayloadValidator(DOC_WIDGETS.map((w, i) => ({ ...w, id: String(i) })) as unknown as Widget[]);
const NOW = Date.parse("2026-11-26T10:00:00Z");
const options = { now: NOW, maxReadings: 5 };

function refusal(list: unknown[]): HttpError {
  try {
    readReadings(list, validator, options);
  } catch (error) {
    assert.ok(error instanceof HttpError);
    return error;
  }
  assert.fail("accepted");
}

Deno.test("readings become values with canonical UTC times", () => {
  const readings = readReadings(
    [
      { observed_at: "2026-11-26T10:00:00+01:00", values: { temperature: 1 } },
      { observed_at: NOW - 1, values: { motor_stats: { rpm: 1, vibration: 2 } } },
    ],
    validator,
    options,
  );
  assert.deepEqual(readings, [
    { observedAt: "2026-11-26T09:00:00.000Z", values: { temperature: 1 } },
    { observedAt: "2026-11-26T09:59:59.999Z", values: { motor_stats: { rpm: 1, vibration: 2 } } },
  ]);
});

Deno.test("every issue of every reading, with its index; the first one in the message", () => {
  const error = refusal([
    { observed_at: NOW, values: { temperature: 1 } },
    { observed_at: NOW, values: {} },
    { observed_at: NOW, values: { humidity: 1 } },
    { observed_at: "2026-11-26T10:00:00", values: { temperature: true } },
  ]);
  assert.equal(error.status, 400);
  assert.deepEqual(error.issues.map((i) => i.path), [
    "1.values",
    "2.values.humidity",
    "3.observed_at",
    "3.values.temperature",
  ]);
  assert.match(
    error.message,
    /^Cannot parse payload: "1\.values" must be an object with at least one DataKey .* \(and 3 more issues\)$/,
  );
  assert.match(error.issues[2]!.message, /^"3\.observed_at" has no UTC offset/);
});

Deno.test("an empty batch and one over the limit are refused whole", () => {
  assert.equal(refusal([]).code, "invalid_payload");
  const over = refusal(Array.from({ length: 6 }, () => ({ observed_at: NOW, values: { temperature: 1 } })));
  assert.equal(over.code, "limit_exceeded");
  assert.match(over.message, /at most 5 readings per request/);
});

Deno.test("at most 100 issues are listed, whatever each reading holds, and the message says the list is cut", () => {
  const error = readReadingsError(Array.from({ length: 150 }, () => 42));
  assert.equal(error.issues.length, 100);
  assert.match(error.message, /\(and 99 more issues; the list stops at 100, there may be more\)$/);
  // Readings of several issues each: 300 of them, three issues apiece.
  const many = readReadingsError(
    Array.from({ length: 300 }, () => ({ observed_at: "x", values: { temperature: true }, a: 1 })),
  );
  assert.equal(many.issues.length, 100);
  // One reading of 600 issues.
  const chart = { machines: Array(300).fill(true), units_per_hour: Array(300).fill("x") };
  const one = readReadingsError([{ observed_at: NOW, values: { production_output: chart } }]);
  assert.equal(one.issues.length, 100);
  assert.equal(one.issues[0]!.path, "0.values.production_output.machines.0");
});

function readReadingsError(list: unknown[]): HttpError {
  try {
    readReadings(list, validator, { now: NOW, maxReadings: 1000 });
  } catch (error) {
    assert.ok(error instanceof HttpError);
    return error;
  }
  assert.fail("accepted");
}
