/**
 * `deno task dev` as a newcomer runs it: a fresh embedded database, the
 * printed key, the documentation's payloads, the values stored, Ctrl-C.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { createClient } from "@supabase/supabase-js";
import { DOC_PAYLOADS } from "./support/function.ts";
import { freePort } from "../local/net.ts";
import { type LatestValue, watchDatasource, type WatchStatus } from "../clients/watch_datasource.ts";

Deno.test("deno task dev serves the endpoint on an embedded PGlite with a demo key", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twinnoverse-dev-" });
  const port = freePort();
  const dev = new Deno.Command(Deno.execPath(), {
    args: ["task", "dev", "--reset"],
    cwd: new URL("../", import.meta.url),
    env: { INGEST_DEV_DIR: dir, PORT: String(port), DATABASE_URL: "", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let output = "";
  const reader = dev.stdout.getReader();
  try {
    while (!output.includes("Ctrl-C stops it.")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`dev server exited early:\n${output}`);
      output += decoder.decode(value);
    }
    const apiKey = output.match(/API key: +(tw_[0-9a-f]{64})/)?.[1];
    const endpoint = output.match(/Endpoint: +(\S+)/)?.[1];
    const databaseUrl = output.match(/served at (postgres:\/\/\S+)\)/)?.[1];
    assert.ok(apiKey && databaseUrl, output);
    assert.equal(endpoint, `http://127.0.0.1:${port}/functions/v1/ingest-data`);
    assert.match(output, /curl -X POST/);

    for (const payload of Object.values(DOC_PAYLOADS)) {
      const res: Response = await fetch(endpoint!, {
        method: "POST",
        headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
        body: payload,
      });
      assert.equal(res.status, 200, await res.text());
    }
    const sql = postgres(databaseUrl!, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql`select data_key, value from public.datasource_values order by data_key`;
      assert.deepEqual(Object.fromEntries(rows.map((r) => [r.data_key, r.value])), JSON.parse(DOC_PAYLOADS.combined));
    } finally {
      await sql.end();
    }

    // The printed .env lines connect supabase-js to the stand-ins: the demo user watches the demo datasource live.
    const env = Object.fromEntries([...output.matchAll(/^([A-Z_]+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
    assert.equal(env.SUPABASE_URL, `http://127.0.0.1:${port}`);
    assert.ok(env.SUPABASE_ANON_KEY && env.DEMO_ACCESS_TOKEN && env.DEMO_DATASOURCE_ID, output);
    const supabase = createClient(env.SUPABASE_URL!, env.SUPABASE_ANON_KEY!, {
      accessToken: () => Promise.resolve(env.DEMO_ACCESS_TOKEN!),
    });
    let latest: Readonly<Record<string, LatestValue>> = {};
    let status: WatchStatus | undefined;
    const watch = watchDatasource(supabase, env.DEMO_DATASOURCE_ID!, {
      onValues: (values) => latest = values,
      onStatus: (s) => status = s,
    });
    try {
      await until(() => status === "live", () => `live (status ${status})`);
      assert.equal(latest.temperature?.value, 42.5, "first read");
      const res = await fetch(endpoint!, {
        method: "POST",
        headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
        body: JSON.stringify({ temperature: 17.25 }),
      });
      assert.equal(res.status, 200, await res.text());
      await until(() => latest.temperature?.value === 17.25, () => "the broadcast of the new value");
    } finally {
      await watch.stop();
      await supabase.removeAllChannels();
    }
  } finally {
    dev.kill("SIGINT");
    // Keep reading so the server never blocks on a full pipe while it stops.
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      output += decoder.decode(chunk.value);
    }
    const status = await dev.status;
    const stderr = decoder.decode(await new Response(dev.stderr).arrayBuffer());
    await Deno.remove(dir, { recursive: true });
    assert.equal(status.code, 0, stderr);
  }
  assert.match(output, /^POST 200 [\d.]+ms datasource=/m);
  assert.ok(!/POST 200.*tw_/.test(output), "a request log line shows the key");
});

async function until(condition: () => boolean, what: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
