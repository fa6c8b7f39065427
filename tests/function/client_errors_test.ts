/**
 * Errors worded for the clients that make them: curl's -u and -d and -F, a
 * text body, Node-RED's Basic authentication; the served function, real curl.
 */
import assert from "node:assert/strict";
import { notJsonError } from "../../supabase/functions/ingest-data/json_error.ts";
import { createTestDatabase } from "../support/database.ts";
import { createTestFunction } from "../support/function.ts";
import { seedWorkspace } from "../support/seed.ts";

/** Runs curl with `args` against `url`; returns the status and the parsed body. */
async function curl(url: string, args: string[]): Promise<{ status: number; body: Record<string, unknown> }> {
  const output = await new Deno.Command("curl", {
    args: ["--silent", "--show-error", "--write-out", "\n%{http_code}", ...args, url],
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const text = new TextDecoder().decode(output.stdout);
  const newline = text.lastIndexOf("\n");
  return { status: Number(text.slice(newline + 1)), body: JSON.parse(text.slice(0, newline)) };
}

Deno.test("real curl: -u is a 401 saying Basic is unsupported, -d form and -F multipart a 415, -d JSON a 200, a raw + in observed_at a 400 saying to URL-encode", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, fn.handle);
  const url = `http://127.0.0.1:${server.addr.port}/functions/v1/ingest-data`;

  const basic = await curl(url, ["-u", `device:${s.apiKey}`, "--json", '{"temperature": 1}']);
  assert.equal(basic.status, 401);
  assert.equal(basic.body.code, "unsupported_auth_scheme");
  assert.match(String(basic.body.message), /^Authorization: Basic is not supported: send the API key as `X-API-Key/);

  const form = await curl(url, ["--header", `X-API-Key: ${s.apiKey}`, "-d", "temperature=42.5"]);
  assert.equal(form.status, 415);
  assert.equal(form.body.code, "unsupported_media_type");
  assert.equal(
    form.body.message,
    "Cannot parse payload: the body must be JSON, but it is form-encoded (application/x-www-form-urlencoded, " +
      'what curl -d sends without a Content-Type): send `Content-Type: application/json` and one JSON object, e.g. {"temperature": 42.5}',
  );

  const multipart = await curl(url, ["--header", `X-API-Key: ${s.apiKey}`, "-F", "temperature=42.5"]);
  assert.equal(multipart.status, 415);
  assert.match(
    String(multipart.body.message),
    /the body must be JSON, but it is a multipart form \(multipart\/form-data\)/,
  );

  const text = await curl(url, [
    "--header",
    `X-API-Key: ${s.apiKey}`,
    "--header",
    "Content-Type: text/plain",
    "-d",
    "42.5 C",
  ]);
  assert.equal(text.status, 415);
  assert.match(String(text.body.message), /the body must be JSON, but it is text\/plain, and not JSON/);

  // curl -d without a Content-Type sends JSON as a form: JSON is JSON, whatever the header says.
  const json = await curl(url, ["--header", `X-API-Key: ${s.apiKey}`, "-d", '{"temperature": 42.5}']);
  assert.equal(json.status, 200, JSON.stringify(json.body));

  // An offset typed into the URL as is: the + arrives as a space.
  const plus = await curl(`${url}?observed_at=2026-11-26T10:00:00+01:00`, [
    "--header",
    `X-API-Key: ${s.apiKey}`,
    "--json",
    '{"temperature": 42.5}',
  ]);
  assert.equal(plus.status, 400);
  assert.equal(plus.body.code, "invalid_observed_at");
  assert.match(String(plus.body.message), /URL-encode/);

  const [count] = await db.sql`select count(*)::int as n from public.datasource_readings`;
  assert.equal(count!.n, 1, "only the JSON request stored anything");
});

Deno.test("invalid JSON says the body must be JSON, why and where, without quoting the body", () => {
  const cases: [string, RegExp][] = [
    ["temperature=42.5&motor_stats=" + "x".repeat(100), /\(unexpected character 'e'\)/],
    ['{"temperature": ', /\(it ends before the JSON does\)/],
    ['{"temperature": 42.5,}', /\(expected double-quoted property name at line 1, column 22\)/],
    ['{"a": 1}\n{"b": 2}', /\(unexpected non-whitespace character after JSON at line 2, column 1\)/],
    ["NaN", /\(it does not start like JSON\)/],
  ];
  for (const [body, reason] of cases) {
    let parseError: unknown;
    try {
      JSON.parse(body);
    } catch (e) {
      parseError = e;
    }
    for (const contentType of [null, "application/json", "application/json; charset=utf-8", "text/json"]) {
      const error = notJsonError(parseError, contentType);
      assert.equal(error.status, 400);
      assert.equal(error.code, "invalid_json");
      assert.match(error.message, /^Cannot parse payload: the body must be JSON, but it is not \(/);
      assert.match(error.message, reason);
      assert.ok(!error.message.includes("...") && !error.message.includes("xxx"), error.message);
      assert.ok(!error.message.includes("temperature=") && !error.message.includes("42.5,"), error.message);
    }
  }
});
