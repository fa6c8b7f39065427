/** Observation times: what is accepted, and the reason given for what is not. */
import assert from "node:assert/strict";
import { formatTime, parseTime, TimeError } from "../../supabase/functions/ingest-data/time.ts";

const NOW = Date.parse("2026-11-26T10:00:00.000Z");

function refusal(raw: unknown): string {
  try {
    parseTime(raw, NOW);
  } catch (error) {
    assert.ok(error instanceof TimeError, String(error));
    return error.message;
  }
  assert.fail(`${JSON.stringify(raw)} was accepted`);
}

Deno.test("accepts ISO 8601 with Z or an offset, and epoch milliseconds (number or digits)", () => {
  const cases: [unknown, string][] = [
    ["2026-11-26T09:00:00Z", "2026-11-26T09:00:00.000Z"],
    ["2026-11-26T09:00:00.5Z", "2026-11-26T09:00:00.500Z"],
    ["2026-11-26T09:00:00.123456789Z", "2026-11-26T09:00:00.123Z"],
    ["2026-11-26T10:00:00+01:00", "2026-11-26T09:00:00.000Z"],
    ["2026-11-26T04:30:00-0430", "2026-11-26T09:00:00.000Z"],
    ["2026-11-26t09:00z", "2026-11-26T09:00:00.000Z"],
    ["2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000Z"],
    ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"],
    [1795683600000, "2026-11-26T09:00:00.000Z"],
    ["1795683600000", "2026-11-26T09:00:00.000Z"],
    ["2026-11-26T10:05:00Z", "2026-11-26T10:05:00.000Z"],
    // A space for the T (RFC 3339 5.6): Python's str(datetime), PostgreSQL's text output.
    ["2026-11-26 10:00:00+01:00", "2026-11-26T09:00:00.000Z"],
    ["2026-11-26 09:00:00.123456+00:00", "2026-11-26T09:00:00.123Z"],
    ["2026-11-26 09:00:00Z", "2026-11-26T09:00:00.000Z"],
  ];
  for (const [raw, expected] of cases) assert.equal(formatTime(parseTime(raw, NOW)), expected, String(raw));
});

Deno.test("refuses with a reason: epoch seconds, impossible dates, no offset, the future, + as a space", () => {
  assert.match(refusal(1795683600), /looks like epoch seconds \(1795683600\): send epoch milliseconds/);
  assert.match(refusal("1795683600"), /looks like epoch seconds/);
  assert.match(refusal("2026-02-30T00:00:00Z"), /is not a date that exists \(2026-02-30\)/);
  assert.match(refusal("2025-02-29T00:00:00Z"), /is not a date that exists/);
  assert.match(refusal("2026-13-01T00:00:00Z"), /is not a date that exists/);
  assert.match(refusal("2026-11-26T24:00:00Z"), /is not a time of day that exists/);
  assert.match(refusal("2026-11-26T09:00:60Z"), /is not a time of day that exists/);
  assert.match(refusal("2026-11-26T09:00:00"), /has no UTC offset: add Z/);
  assert.match(refusal("2026-11-26T10:00:00 01:00"), /URL-encode the time in a query string \("\+" is %2B\)/);
  assert.match(refusal("2026-11-26T10:05:01Z"), /more than 5 minutes in the future/);
  assert.match(refusal("0000-01-01T00:00:00Z"), /0001-01-01T00:00:00Z or later/);
  assert.match(refusal("0001-01-01T00:00:00+01:00"), /0001-01-01T00:00:00Z or later/);
  assert.match(refusal("2026-11-26T09:00:00+25:00"), /offset that does not exist/);
  assert.match(refusal(1795683600000.5), /integer number of epoch milliseconds/);
  assert.match(refusal(1e20), /^is out of range \(100000000000000000000\)/);
  assert.match(refusal("100000000000000000000"), /^is out of range/);
  assert.match(refusal(-1e20), /^is out of range/);
  // A space for the T only with seconds and Z or an offset; a "+" that became a space is still named.
  assert.match(refusal("2026-11-26 09:00:00"), /must be an ISO 8601 date-time such as/);
  assert.match(refusal("2026-11-26 09:00Z"), /must be an ISO 8601 date-time such as/);
  assert.match(refusal("2026-11-26  09:00:00Z"), /must be an ISO 8601 date-time such as/);
  assert.match(refusal("2026-11-26 10:00:00 01:00"), /URL-encode the time in a query string/);
  assert.match(refusal(-1), /after 1970/);
  for (const raw of ["infinity", "now", "2026-11-26", "26/11/2026 09:00", "", null, true, {}]) {
    assert.match(refusal(raw), /must be/, String(raw));
  }
});
