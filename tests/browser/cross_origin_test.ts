/// <reference lib="dom" />
/**
 * The dev stack beside a browser: a page served from another origin (as a
 * dashboard's own dev server on another port would be) can use the stand-ins
 * with the printed demo token, and nothing with a token it forged with the
 * Supabase CLI's published default secret, whatever role that token claims.
 */
import assert from "node:assert/strict";
import { DEFAULT_JWT_SECRET } from "../../local/jwt.ts";
import { launchChromium } from "../../local/chromium.ts";
import { freePort } from "../../local/net.ts";
import { startDevServer } from "../support/dev_server.ts";
import { DOC_PAYLOADS } from "../support/function.ts";
import { postToDev } from "../support/browser.ts";

/** What the page on the other origin saw of one attempt. */
interface Attempt {
  status: number;
  body: unknown;
}

/** In the page: calls an RPC of the REST stand-in as `token`. */
async function callRpc(url: string, anon: string, token: string, name: string, args: unknown): Promise<Attempt> {
  const res = await fetch(`${url}/rest/v1/rpc/${name}`, {
    method: "POST",
    headers: { apikey: anon, Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(args),
  });
  return { status: res.status, body: await res.json() };
}

/** In the page: an HS256 JWT signed with `secret` by WebCrypto, as any web page can make one. */
async function forgeToken(secret: string, claims: Record<string, unknown>): Promise<string> {
  const encode = (bytes: Uint8Array) =>
    btoa(String.fromCharCode(...bytes)).replace(/=+$/, "").replace(/\+/g, "-")
      .replace(/\//g, "_");
  const text = (value: unknown) => encode(new TextEncoder().encode(JSON.stringify(value)));
  const body = `${text({ alg: "HS256", typ: "JWT" })}.${text(claims)}`;
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const signature = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(body));
  return `${body}.${encode(new Uint8Array(signature))}`;
}

/** In the page: joins `topic` privately with `token` on a socket opened with `apikey`; the first reply or close. */
function joinTopic(url: string, apikey: string, token: string, topic: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = new WebSocket(`${url.replace("http", "ws")}/realtime/v1/websocket?apikey=${apikey}&vsn=2.0.0`);
    socket.onopen = () =>
      socket.send(JSON.stringify(["1", "1", topic, "phx_join", { config: { private: true }, access_token: token }]));
    socket.onmessage = (event) => {
      const [, , , , payload] = JSON.parse(event.data);
      socket.close();
      resolve(`${payload.status}: ${JSON.stringify(payload.response)}`);
    };
    socket.onerror = () => resolve("socket refused");
  });
}

Deno.test("dev stack from another origin: the printed demo token works; tokens forged with the CLI's published secret do nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twinnoverse-dev-" });
  const dev = await startDevServer(dir, ["--reset"]);
  const otherPort = freePort();
  const page_server = Deno.serve(
    { hostname: "127.0.0.1", port: otherPort, onListen: () => {} },
    () =>
      new Response("<!doctype html><title>a dashboard on another port</title>", {
        headers: { "content-type": "text/html" },
      }),
  );
  try {
    const env = Object.fromEntries([...dev.output().matchAll(/^([A-Z_]+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const { SUPABASE_URL: url, SUPABASE_ANON_KEY: anon, DEMO_ACCESS_TOKEN: demo, DEMO_DATASOURCE_ID: datasource } = env;
    assert.ok(url && anon && demo && datasource, dev.output());
    assert.equal((await postToDev(dev, DOC_PAYLOADS.single)).status, 200);

    await using chromium = await launchChromium();
    const page = await chromium.browser.newPage();
    await page.goto(`http://127.0.0.1:${otherPort}/`);
    assert.notEqual(new URL(url).port, String(otherPort));
    await page.evaluate(
      `globalThis.callRpc = ${callRpc}; globalThis.forgeToken = ${forgeToken}; globalThis.joinTopic = ${joinTopic};`,
    );
    type PageFns = {
      callRpc: typeof callRpc;
      forgeToken: typeof forgeToken;
      joinTopic: typeof joinTopic;
    };

    // The printed token: the demo user's values, from the other origin.
    const own = await page.evaluate(
      (url, anon, demo, datasource) =>
        (globalThis as unknown as PageFns).callRpc(url, anon, demo, "datasource_latest_values", {
          p_datasource_id: datasource,
        }),
      url,
      anon,
      demo,
      datasource,
    );
    assert.equal(own.status, 200, JSON.stringify(own.body));
    assert.deepEqual((own.body as { data_key: string; value: unknown }[]).map((r) => [r.data_key, r.value]), [
      ["temperature", 42.5],
    ]);
    assert.match(
      await page.evaluate(
        (url, anon, demo, topic) => (globalThis as unknown as PageFns).joinTopic(url, anon, demo, topic),
        url,
        anon,
        demo,
        `realtime:datasource:${datasource}`,
      ),
      /^ok: /,
    );

    // Forged with the CLI's published secret: every role, REST and Realtime alike.
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const demoUser = JSON.parse(atob(demo.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/"))).sub as string;
    // The roles at once: each refused join waits out Supabase's 5 s back-off.
    await Promise.all(["postgres", "service_role", "authenticated", "anon"].map(async (role) => {
      const results: { read: Attempt; key: Attempt; join: string; joinWithAnon: string } = await page.evaluate(
        async (url, anon, secret, claims, datasource) => {
          const fns = globalThis as unknown as PageFns;
          const forged = await fns.forgeToken(secret, claims);
          return {
            read: await fns.callRpc(url, anon, forged, "datasource_latest_values", { p_datasource_id: datasource }),
            key: await fns.callRpc(url, forged, forged, "create_datasource_api_key", {
              p_datasource_id: datasource,
              p_name: "stolen",
            }),
            join: await fns.joinTopic(url, forged, forged, `realtime:datasource:${datasource}`),
            joinWithAnon: await fns.joinTopic(url, anon, forged, `realtime:datasource:${datasource}`),
          };
        },
        url,
        anon,
        DEFAULT_JWT_SECRET,
        { role, sub: demoUser, exp, aud: "authenticated" },
        datasource,
      );
      assert.equal(results.read.status, 401, `${role}: ${JSON.stringify(results.read.body)}`);
      assert.equal(results.key.status, 401, `${role}: ${JSON.stringify(results.key.body)}`);
      assert.equal(results.join, "socket refused", role);
      assert.match(results.joinWithAnon, /^error: .*Invalid|^error: .*signature/i, role);
    }));
  } finally {
    await page_server.shutdown();
    await dev.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
