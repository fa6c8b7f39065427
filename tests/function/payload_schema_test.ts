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
