/**
 * The OpenAPI document: generated from the zod schemas, committed fresh,
 * served without a key, true to the real responses, and clean under Redocly's
 * recommended rules.
 */
import assert from "node:assert/strict";
import { openApiText } from "../../local/openapi.ts";
import {
  ERROR_CODES,
  errorBodySchema,
  exampleSchemaSchema,
  ingestResultSchema,
  readingsResultSchema,
} from "../../supabase/functions/ingest-data/api_schema.ts";
import { createTestDatabase } from "../support/database.ts";
import { errorCodesInSource } from "../support/error_codes.ts";
import { createTestFunction, DOC_PAYLOADS, ENDPOINT, postRequest } from "../support/function.ts";
import { seedWorkspace } from "../support/seed.ts";

const COMMITTED = new URL("../../docs/openapi.json", import.meta.url);
/** Pinned like every other tool; 2.x runs on Node.js 20.19+ and 22.12+. */
const REDOCLY = "@redocly/cli@2.77.0";

Deno.test("docs/openapi.json is what the zod schemas generate (else: deno task openapi)", async () => {
  assert.ok(
    await Deno.readTextFile(COMMITTED) === openApiText(),
    "docs/openapi.json is stale: run `deno task openapi`",
  );
});

Deno.test("every error code the function answers with is in the OpenAPI document, under its status", async () => {
  const inSource = await errorCodesInSource();
  assert.deepEqual(
    Object.fromEntries([...inSource].sort()),
    Object.fromEntries(Object.entries(ERROR_CODES).map(([code, [status]]) => [code, status]).sort()),
  );
  const paths = JSON.parse(openApiText()).paths;
  const post = paths["/functions/v1/ingest-data"].post.responses;
  for (const [code, [status]] of Object.entries(ERROR_CODES)) {
    assert.match(post[String(status)]?.description ?? "", new RegExp(`\`${code}\``), `${status} ${code}`);
  }
  assert.ok(paths["/functions/v1/ingest-data"].get.responses["200"]);
});

Deno.test("GET .../openapi.json answers the document without a key; real responses match its schemas", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);

  const doc = await fn.handle(new Request(`${ENDPOINT}/openapi.json`));
  assert.equal(doc.status, 200);
  assert.ok(doc.headers.get("X-Request-Id"));
  assert.equal(await doc.text(), await Deno.readTextFile(COMMITTED));
  const post = await fn.handle(new Request(`${ENDPOINT}/openapi.json`, { method: "POST", body: "{}" }));
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("Allow"), "GET");
  errorBodySchema.parse(await post.json());

  const stored = await fn.handle(postRequest(DOC_PAYLOADS.combined, { key: s.apiKey }));
  assert.equal(stored.status, 200);
  ingestResultSchema.parse(await stored.json());
  for (const name of ["X-Request-Id", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]) {
    assert.ok(stored.headers.get(name), name);
  }
  // A batch of readings, its replay with the same Idempotency-Key, and a dry run.
  const readings = [
    { observed_at: "2026-11-26T09:58:00Z", values: { temperature: 41.9 } },
    { observed_at: Date.now() - 1000, values: { motor_stats: { rpm: 1490, vibration: 0.7 } } },
  ];
  const idempotent = { key: s.apiKey, headers: { "Idempotency-Key": crypto.randomUUID() } };
  const batch = await fn.handle(postRequest(readings, idempotent));
  assert.equal(batch.status, 200);
  assert.equal(readingsResultSchema.parse(await batch.json()).readings, 2);
  const replay = await fn.handle(postRequest(readings, idempotent));
  assert.equal(replay.headers.get("Idempotent-Replayed"), "true");
  readingsResultSchema.parse(await replay.json());
  const dry = await fn.handle(postRequest({ temperature: 1 }, { key: s.apiKey, query: "?dry_run=true" }));
  assert.equal(ingestResultSchema.parse(await dry.json()).dry_run, true);
  const example = await fn.handle(new Request(ENDPOINT, { headers: { "X-API-Key": s.apiKey } }));
  exampleSchemaSchema.parse(await example.json());

  const failures: [Request, number][] = [
    [postRequest({ temperature: true }, { key: s.apiKey }), 400],
    [postRequest({ temperature: 1 }), 401],
    [new Request(ENDPOINT, { method: "PUT", headers: { "X-API-Key": s.apiKey } }), 405],
    [postRequest("a=1", { key: s.apiKey, headers: { "Content-Type": "application/x-www-form-urlencoded" } }), 415],
    [postRequest({ temperature: 2 }, idempotent), 422],
    [postRequest({ temperature: 1 }, { key: s.apiKey, headers: { "Content-Encoding": "br" } }), 415],
  ];
  for (const [request, status] of failures) {
    const res = await fn.handle(request);
    assert.equal(res.status, status);
    const body = errorBodySchema.parse(await res.json());
    assert.equal(ERROR_CODES[body.code as keyof typeof ERROR_CODES]?.[0], status, body.code);
    assert.equal(body.request_id, res.headers.get("X-Request-Id"));
  }
});

Deno.test(`redocly lint (${REDOCLY}, recommended rules) finds no error and no warning in docs/openapi.json`, async () => {
  const output = await new Deno.Command("npx", {
    args: ["--yes", REDOCLY, "lint", "--format=stylish", COMMITTED.pathname],
    env: { REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true", NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, text);
  assert.match(text, /Your API description is valid/, text);
  assert.doesNotMatch(text, /\d+ warnings?/, text);
});
