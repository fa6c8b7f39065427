/** The payload's issues: one per thing wrong, none that misleads. */
import assert from "node:assert/strict";
import { HttpError } from "../../supabase/functions/ingest-data/http_error.ts";
import { buildPayloadValidator } from "../../supabase/functions/ingest-data/payload_schema.ts";
import type { Widget } from "../../supabase/functions/ingest-data/store.ts";
import { DOC_WIDGETS } from "../../local/provisioning.ts";

const validator = buildPayloadValidator(DOC_WIDGETS.map((w, i) => ({ ...w, id: String(i) })) as unknown as Widget[]);

function issues(payload: unknown): { path: string; message: string }[] {
  try {
    validator.validate(payload);
  } catch (error) {
    assert.ok(error instanceof HttpError);
    return error.issues;
  }
  assert.fail("accepted");
}

Deno.test("an unknown DataKey alone is one issue, not also 'at least one DataKey'", () => {
  const only = issues({ temperatur: 99 });
  assert.deepEqual(only.map((i) => i.path), ["temperatur"]);
  assert.match(only[0]!.message, /^"temperatur" is not a DataKey of this datasource/);
  // With a known key beside it, the same single issue.
  assert.deepEqual(issues({ temperature: 1, temperatur: 99 }).map((i) => i.path), ["temperatur"]);
  // Nothing at all is still told what to send.
  const empty = issues({});
  assert.deepEqual(empty.map((i) => i.path), [""]);
  assert.match(empty[0]!.message, /^the payload must be an object with at least one DataKey \(/);
});

Deno.test("at most 100 issues, and checking stops once they are found: a chart's items are not all read", () => {
  let reads = 0;
  const counted = (list: unknown[]) =>
    new Proxy(list, {
      get(target, name, receiver) {
        if (typeof name === "string" && /^\d+$/.test(name)) reads++;
        return Reflect.get(target, name, receiver);
      },
    });
  const error = refusal({
    production_output: {
      machines: counted(Array(10_000).fill(true)),
      units_per_hour: counted(Array(10_000).fill("x")),
    },
  });
  assert.equal(error.issues.length, 100);
  assert.deepEqual(error.issues.slice(0, 2).map((i) => i.path), [
    "production_output.machines.0",
    "production_output.machines.1",
  ]);
  assert.match(error.message, /\(and 99 more issues; the list stops at 100, there may be more\)$/);
  assert.ok(reads < 1_000, `${reads} items read`);
  // Under the cap, the message counts them.
  assert.match(refusal({ temperature: true, motor_stats: 1 }).message, /\(and 1 more issue\)$/);
});

function refusal(payload: unknown): HttpError {
  try {
    validator.validate(payload);
  } catch (error) {
    assert.ok(error instanceof HttpError);
    return error;
  }
  assert.fail("accepted");
}
