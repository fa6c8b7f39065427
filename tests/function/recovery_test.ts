/**
 * The database goes away and comes back: requests fail with 503 meanwhile,
 * and the same function instance serves 200s again once it is back. Uses a
 * PostgreSQL server of its own, since it stops it.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { applyMigrations, applyPlatformFixture } from "../../local/migrate.ts";
import { startPostgres } from "../../local/postgres_server.ts";
import { createApiKey, createDatasource, createWorkspace } from "../../local/provisioning.ts";
import { createTestFunction, postRequest } from "../support/function.ts";

Deno.test("503 with Retry-After while PostgreSQL is down, 200 again once it is back, without a restart", async () => {
  const server = await startPostgres();
  try {
    const sql = postgres(server.url, { max: 1, onnotice: () => {} });
    await applyPlatformFixture(sql);
    await applyMigrations(sql);
    const datasourceId = await createDatasource(sql, await createWorkspace(sql, "Recovery"));
    const { apiKey } = await createApiKey(sql, datasourceId);
    await sql.end();

    await using fn = createTestFunction(server.url);
    const first = await fn.handle(postRequest({ temperature: 1 }, { key: apiKey }));
    assert.equal(first.status, 200);
    await first.body?.cancel();

    await server.stop({ keepFiles: true });
    for (let i = 0; i < 8; i++) {
      const res = await fn.handle(postRequest({ temperature: 2 }, { key: apiKey }));
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("Retry-After"), "5");
      await res.body?.cancel();
    }
    await server.start();

    // The instance reconnects by itself: a client retrying finds it working.
    let status = 0;
    for (let attempt = 0; attempt < 5 && status !== 200; attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 600));
      const res = await fn.handle(postRequest({ temperature: 3 }, { key: apiKey }));
      status = res.status;
      await res.body?.cancel();
    }
    assert.equal(status, 200);
    const check = postgres(server.url, { max: 1, onnotice: () => {} });
    const rows = await check`select value from public.datasource_readings order by id`;
    await check.end();
    assert.deepEqual(rows.map((r) => r.value), [1, 3], "nothing of the refused requests was written");
  } finally {
    await server.stop();
  }
});
