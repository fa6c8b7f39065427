/** `deno task dev` routes like the deployed function: a trailing slash is the endpoint, other paths under it a logged 404. */
import assert from "node:assert/strict";
import { startDevServer } from "./support/dev_server.ts";

Deno.test("deno task dev: /functions/v1/ingest-data/ is the endpoint; /functions/v1/ingest-data/nope a 404 with X-Request-Id, logged", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ingest-dev-routing-" });
  try {
    const dev = await startDevServer(dir, ["--reset"]);
    try {
      const post = (url: string) =>
        fetch(url, {
          method: "POST",
          headers: { "X-API-Key": dev.apiKey, "Content-Type": "application/json" },
          body: JSON.stringify({ temperature: 21.5 }),
        });
      const slash = await post(dev.endpoint + "/");
      assert.equal(slash.status, 200, await slash.clone().text());
      assert.deepEqual((await slash.json()).stored, ["temperature"]);
      const missing = await post(dev.endpoint + "/nope");
      const body = await missing.json();
      assert.equal(missing.status, 404);
      assert.equal(body.code, "not_found");
      assert.equal(missing.headers.get("X-Request-Id"), body.request_id);
      const output = await dev.stop();
      assert.match(output, new RegExp(`POST 404 [\\d.]+ms not_found request_id=${body.request_id}`));
    } finally {
      await dev.stop().catch(() => {});
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
