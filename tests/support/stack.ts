/**
 * The local stack on a test database and a free port: the ingest-data
 * function at `/functions/v1/ingest-data` and the Supabase stand-ins
 * (`/rest/v1/`, `/realtime/v1/websocket`), as `deno task dev` serves them;
 * plus supabase-js clients signed in as test users.
 *
 * @module
 */
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { anonKey, mintUserToken } from "../../local/jwt.ts";
import { freePort } from "../../local/net.ts";
import type { RealtimeLimits } from "../../local/realtime_stand_in.ts";
import { startSupabaseStandIns, type SupabaseStandIns } from "../../local/supabase_stand_ins.ts";
import { createTestFunction, type TestFunction } from "./function.ts";

/** A running stack; `await using` stops it. */
export interface TestStack extends AsyncDisposable {
  url: string;
  anonKey: string;
  jwtSecret: string;
  standIns: SupabaseStandIns;
  fn: TestFunction;
  /** POSTs `body` to the function with `apiKey`; returns the status (the body is consumed). */
  post(apiKey: string, body: unknown): Promise<number>;
  /** A supabase-js client whose `accessToken` callback returns `token()` (the recommended setup). */
  client(token: () => string | Promise<string>): SupabaseClient;
  /** A token for `userId` (`authenticated`), valid for an hour unless said otherwise. */
  tokenFor(userId: string, options?: { expiresIn?: number | null }): Promise<string>;
  /** Stops serving (sockets dropped, port closed) until `restart()`. */
  stop(): Promise<void>;
  /** Serves again on the same port. */
  restart(): Promise<void>;
}

/** Starts the stack on `databaseUrl` (a test database). `joinErrorBackoffMs` defaults to 100 (Supabase's tests). */
export async function startTestStack(
  databaseUrl: string,
  options: { joinErrorBackoffMs?: number; env?: Record<string, string>; realtimeLimits?: Partial<RealtimeLimits> } = {},
): Promise<TestStack> {
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  // A secret of its own, as each dev database has: never the Supabase CLI's published one.
  const jwtSecret = crypto.randomUUID() + crypto.randomUUID();
  const fn = createTestFunction(databaseUrl, { INGEST_RATE_LIMIT_PER_SECOND: "0", ...options.env });
  const clients: SupabaseClient[] = [];
  let standIns!: SupabaseStandIns;
  let server: Deno.HttpServer | null = null;

  async function serve() {
    standIns = await startSupabaseStandIns({
      databaseUrl,
      jwtSecret,
      feed: "notify",
      joinErrorBackoffMs: options.joinErrorBackoffMs ?? 100,
      realtimeLimits: options.realtimeLimits,
    });
    server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, (request) => {
      if (new URL(request.url).pathname === "/functions/v1/ingest-data") return fn.handle(request);
      return standIns.route(request) ?? Response.json({ message: "not found" }, { status: 404 });
    });
  }

  async function stop() {
    if (!server) return;
    await standIns.close();
    await server.shutdown();
    server = null;
  }

  await serve();
  const stack: TestStack = {
    url,
    anonKey: await anonKey(jwtSecret),
    jwtSecret,
    fn,
    get standIns() {
      return standIns;
    },
    async post(apiKey, body) {
      const res = await fetch(`${url}/functions/v1/ingest-data`, {
        method: "POST",
        headers: { "X-API-Key": apiKey, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      await res.body?.cancel();
      return res.status;
    },
    client(token) {
      const client = createClient(url, stack.anonKey, { accessToken: async () => await token() });
      clients.push(client);
      return client;
    },
    tokenFor: (userId, tokenOptions) => mintUserToken(jwtSecret, userId, tokenOptions),
    stop,
    restart: serve,
    async [Symbol.asyncDispose]() {
      for (const client of clients) await client.removeAllChannels();
      await stop();
      await fn.store.close();
    },
  };
  return stack;
}
