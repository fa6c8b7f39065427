/**
 * End to end: index.ts served on a port, called with the documentation's
 * cURL command (the real curl binary), then with fetch.
 */
import assert from "node:assert/strict";
import { createTestDatabase } from "../support/database.ts";
import { seedWorkspace } from "../support/seed.ts";
import { freePort, waitForPort } from "../../scripts/lib/net.ts";

Deno.test("the documentation's cURL request against the served function returns 200 and stores the values", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const port = freePort();
  const server = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "supabase/functions/ingest-data/index.ts"],
    cwd: new URL("../../", import.meta.url),
    env: { DATABASE_URL: db.url, PORT: String(port) },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    await waitForPort(port);
    const url = `http://127.0.0.1:${port}/functions/v1/ingest-data`;
    // The documentation's example, word for word but for the URL and key.
    const curl = await new Deno.Command("curl", {
      args: [
        "-sS",
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        url,
        "--header",
        `Authorization: Bearer ${s.apiKey}`,
        "--header",
        "Content-Type: application/json",
        "--data-raw",
        `{
"temperature": 42.5,
"motor_stats": {
"rpm": 1500,
"vibration": 0.75
}
}`,
      ],
      stdout: "piped",
    }).output();
    const [body, status] = new TextDecoder().decode(curl.stdout).split("\n");
    assert.equal(status, "200", body);
    assert.deepEqual(JSON.parse(body!).stored, ["motor_stats", "temperature"]);

    const res = await fetch(url, { method: "POST", headers: { "X-API-Key": s.apiKey }, body: '{"temperature": 43}' });
    assert.equal(res.status, 200);
    assert.ok(res.headers.get("X-Request-Id"));
    await res.body?.cancel();
    const rows = await db.sql`select data_key, value from public.datasource_values order by data_key`;
    assert.deepEqual(rows.map((r) => [r.data_key, r.value]), [["motor_stats", { rpm: 1500, vibration: 0.75 }], [
      "temperature",
      43,
    ]]);
  } finally {
    server.kill("SIGTERM");
    const out = await server.output();
    const logs = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.ok(!logs.includes(s.apiKey.slice(3)), "the key appears in the function's output");
  }
});
