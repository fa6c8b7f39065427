/**
 * `deno task dev` as a newcomer runs it: a fresh embedded database, the
 * printed key, the documentation's payloads, the values stored, Ctrl-C; the
 * key kept across restarts, `--new-key`, and log lines with the request id.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { createClient } from "@supabase/supabase-js";
import { DEFAULT_JWT_SECRET, mintToken, verifyToken } from "../local/jwt.ts";
import { type LatestValue, watchDatasource, type WatchStatus } from "../clients/watch_datasource.ts";
import { DOC_PAYLOADS } from "./support/function.ts";
import { startDevServer } from "./support/dev_server.ts";
import { freePort } from "../local/net.ts";

/** POSTs a payload with the key as the documentation's cURL does. */
function post(endpoint: string, apiKey: string, payload: string): Promise<Response> {
  return fetch(endpoint, {
    method: "POST",
    headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
    body: payload,
  });
}

Deno.test("deno task dev serves the endpoint on an embedded PGlite with a demo key", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twinnoverse-dev-" });
  try {
    const dev = await startDevServer(dir, ["--reset"]);
    const requestIds: string[] = [];
    try {
      assert.match(dev.output(), /curl -X POST/);
      for (const payload of Object.values(DOC_PAYLOADS)) {
        const res = await post(dev.endpoint, dev.apiKey, payload);
        assert.equal(res.status, 200, await res.text());
        requestIds.push(res.headers.get("X-Request-Id")!);
      }
      const bad = await post(dev.endpoint, dev.apiKey, '{"temperature": true}');
      assert.equal(bad.status, 400);
      assert.equal((await bad.json()).request_id, bad.headers.get("X-Request-Id"));
      requestIds.push(bad.headers.get("X-Request-Id")!);
      const sql = postgres(dev.databaseUrl, { max: 1, onnotice: () => {} });
      try {
        const rows = await sql`select data_key, value from public.datasource_values order by data_key`;
        assert.deepEqual(
          Object.fromEntries(rows.map((r) => [r.data_key, r.value])),
          JSON.parse(DOC_PAYLOADS.combined),
        );
      } finally {
        await sql.end();
      }
    } finally {
      const output = await dev.stop();
      assert.match(output, /^POST 200 [\d.]+ms datasource=/m);
      assert.ok(!/POST 200.*tw_/.test(output), "a request log line shows the key");
      // The request id a client sees is in the log line of its request.
      for (const id of requestIds) assert.match(output, new RegExp(`^POST \\d{3} .* request_id=${id}$`, "m"));
      assert.match(output, /^POST 400 .* invalid_payload request_id=/m);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task dev keeps the demo key across restarts; --new-key replaces and revokes it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twinnoverse-dev-" });
  try {
    const first = await startDevServer(dir, ["--reset"]);
    await first.stop();
    assert.match(first.output(), /\(new: kept in /);
    const keyFile = `${dir}/demo_key`;
    assert.equal((await Deno.stat(keyFile)).mode! & 0o777, 0o600);
    assert.equal((await Deno.readTextFile(keyFile)).trim(), first.apiKey);

    const second = await startDevServer(dir);
    try {
      assert.equal(second.apiKey, first.apiKey);
      assert.match(second.output(), /\(the same as last time: kept in /);
      const res = await post(second.endpoint, second.apiKey, DOC_PAYLOADS.single);
      assert.equal(res.status, 200, await res.text());
    } finally {
      await second.stop();
    }

    const third = await startDevServer(dir, ["--new-key"]);
    try {
      assert.notEqual(third.apiKey, first.apiKey);
      assert.equal((await Deno.readTextFile(keyFile)).trim(), third.apiKey);
      const old = await post(third.endpoint, first.apiKey, DOC_PAYLOADS.single);
      assert.equal(old.status, 401);
      assert.equal((await old.json()).code, "revoked_api_key");
      const res = await post(third.endpoint, third.apiKey, DOC_PAYLOADS.single);
      assert.equal(res.status, 200, await res.text());
    } finally {
      await third.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task dev prints .env lines with which supabase-js watches the demo datasource live", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twinnoverse-dev-" });
  try {
    const dev = await startDevServer(dir, ["--reset"]);
    try {
      const env = envLines(dev.output());
      assert.equal(env.SUPABASE_URL, new URL(dev.endpoint).origin);
      assert.ok(env.SUPABASE_ANON_KEY && env.DEMO_ACCESS_TOKEN && env.DEMO_DATASOURCE_ID, dev.output());
      assert.equal((await post(dev.endpoint, dev.apiKey, DOC_PAYLOADS.single)).status, 200);
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
        assert.equal(latest.temperature?.value, 42.5, "first read through the REST stand-in");
        const res = await post(dev.endpoint, dev.apiKey, JSON.stringify({ temperature: 17.25 }));
        assert.equal(res.status, 200, await res.text());
        await until(() => latest.temperature?.value === 17.25, () => "the broadcast through the Realtime stand-in");
      } finally {
        await watch.stop();
        await supabase.removeAllChannels();
      }
    } finally {
      await dev.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task dev: a second server on the same folder refuses to start and touches nothing of the first", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twinnoverse-dev-" });
  try {
    const first = await startDevServer(dir, ["--reset"]);
    try {
      const filesBefore = await listDir(dir);
      assert.ok(filesBefore.includes("dev.lock") && filesBefore.includes("database_url"), filesBefore.join(", "));
      const second = await new Deno.Command(Deno.execPath(), {
        args: ["task", "dev", "--reset"],
        cwd: new URL("../", import.meta.url),
        env: {
          INGEST_DEV_DIR: dir,
          PORT: String(freePort()),
          DATABASE_URL: "",
          SUPABASE_JWT_SECRET: "",
          NO_COLOR: "1",
        },
      }).output();
      assert.equal(second.code, 1);
      assert.match(
        new TextDecoder().decode(second.stderr),
        /Another deno task dev \(pid \d+\) is using .*: stop it first \(Ctrl-C in its terminal\), or set INGEST_DEV_DIR/,
      );
      assert.deepEqual(await listDir(dir), filesBefore);
      const res = await post(first.endpoint, first.apiKey, DOC_PAYLOADS.single);
      assert.equal(res.status, 200, await res.text());
    } finally {
      await first.stop();
    }
    assert.ok(!(await listDir(dir)).includes("dev.lock"), "the lock is released at Ctrl-C");

    // A lock left by a process that is gone (killed, a reboot) is taken over.
    await Deno.writeTextFile(`${dir}/dev.lock`, "999999999\n");
    const third = await startDevServer(dir);
    await third.stop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The names in `dir`, sorted. */
async function listDir(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((entry) => entry.name).sort();
}

/** The `NAME=value` lines the dev server printed. */
function envLines(output: string): Record<string, string> {
  return Object.fromEntries([...output.matchAll(/^([A-Z_]+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** POSTs to the dev server's REST stand-in as `token`; returns the status. */
async function rpcStatus(endpoint: string, token: string, datasourceId: string): Promise<number> {
  const res = await fetch(`${new URL(endpoint).origin}/rest/v1/rpc/datasource_latest_values`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ p_datasource_id: datasourceId }),
  });
  await res.body?.cancel();
  return res.status;
}

Deno.test("deno task dev signs with its database's own secret (0600, kept across restarts), or SUPABASE_JWT_SECRET", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twinnoverse-dev-" });
  try {
    const first = await startDevServer(dir, ["--reset"]);
    const env = envLines(first.output());
    try {
      const file = `${dir}/jwt_secret`;
      assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
      assert.equal(env.SUPABASE_JWT_SECRET, (await Deno.readTextFile(file)).trim());
      assert.notEqual(env.SUPABASE_JWT_SECRET, DEFAULT_JWT_SECRET);
      assert.match(first.output(), /^JWT secret: this database's own \(new: kept in /m);
      for (const token of [env.DEMO_ACCESS_TOKEN!, env.SUPABASE_ANON_KEY!]) {
        await verifyToken(token, env.SUPABASE_JWT_SECRET!);
      }
      assert.equal(await rpcStatus(first.endpoint, env.DEMO_ACCESS_TOKEN!, env.DEMO_DATASOURCE_ID!), 200);
      const cli = await mintToken(DEFAULT_JWT_SECRET, { role: "service_role" });
      assert.equal(
        await rpcStatus(first.endpoint, cli, env.DEMO_DATASOURCE_ID!),
        401,
        "the CLI's secret signs nothing",
      );
    } finally {
      await first.stop();
    }

    const second = await startDevServer(dir);
    try {
      assert.equal(envLines(second.output()).SUPABASE_JWT_SECRET, env.SUPABASE_JWT_SECRET);
      assert.match(second.output(), /^JWT secret: this database's own \(the same as last time: /m);
      assert.equal(await rpcStatus(second.endpoint, env.DEMO_ACCESS_TOKEN!, env.DEMO_DATASOURCE_ID!), 200);
    } finally {
      await second.stop();
    }

    const own = crypto.randomUUID() + crypto.randomUUID();
    const third = await startDevServer(dir, [], { SUPABASE_JWT_SECRET: own });
    try {
      const lines = envLines(third.output());
      assert.equal(lines.SUPABASE_JWT_SECRET, undefined, "a secret from the environment is not printed");
      assert.match(third.output(), /^JWT secret: SUPABASE_JWT_SECRET from the environment$/m);
      await verifyToken(lines.DEMO_ACCESS_TOKEN!, own);
      assert.equal(await rpcStatus(third.endpoint, env.DEMO_ACCESS_TOKEN!, env.DEMO_DATASOURCE_ID!), 401);
    } finally {
      await third.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function until(condition: () => boolean, what: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
