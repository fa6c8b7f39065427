/** Which paths are the endpoint: with or without a trailing slash; anything else is a 404 with a request id and a log line. */
import assert from "node:assert/strict";
import { createTestDatabase } from "../support/database.ts";
import { createTestFunction, ENDPOINT, postRequest } from "../support/function.ts";
import { seedWorkspace } from "../support/seed.ts";

Deno.test("/functions/v1/ingest-data/ (trailing slash) is the same endpoint; another path is a 404 with X-Request-Id and a log line", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  for (const url of [ENDPOINT + "/", ENDPOINT + "/?observed_at=" + (Date.now() - 1000)]) {
    const post = await fn.handle(new Request(url, postRequest({ temperature: 1 }, { key: s.apiKey })));
    assert.equal(post.status, 200, url);
    assert.deepEqual((await post.json()).stored, ["temperature"]);
  }
  const get = await fn.handle(new Request(ENDPOINT + "/", { headers: { "X-API-Key": s.apiKey } }));
  assert.equal(get.status, 200);
  assert.ok((await get.json()).json_schema);

  for (const path of ["/nope", "/openapi.json/x", "s", "/ingest-data"]) {
    const res = await fn.handle(new Request(ENDPOINT + path, postRequest({ temperature: 2 }, { key: s.apiKey })));
    const body = await res.json();
    assert.equal(res.status, 404, path);
    assert.equal(body.code, "not_found");
    assert.match(body.message, /^Not found: the endpoint is \/functions\/v1\/ingest-data/);
    assert.equal(res.headers.get("X-Request-Id"), body.request_id);
    const line = fn.logs.at(-1)!;
    assert.deepEqual([line.request_id, line.status, line.code], [body.request_id, 404, "not_found"]);
  }
  const [count] = await db.sql`select count(*)::int as n from public.datasource_readings`;
  assert.equal(count!.n, 2);
});
