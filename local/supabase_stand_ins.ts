/**
 * The stand-ins for the parts of Supabase a dashboard talks to, on the local
 * stack's one port at Supabase's own paths: `/rest/v1/` (REST stand-in,
 * rest_stand_in.ts) and `/realtime/v1/websocket` (Realtime stand-in,
 * realtime_stand_in.ts). One unmodified supabase-js client works against
 * them and against a Supabase project alike.
 *
 * @module
 */
import postgres from "postgres";
import { AUTHENTICATOR, type AuthenticatorLogin, connectAuthenticator } from "./authenticator.ts";
import { createRestStandIn } from "./rest_stand_in.ts";
import { type RealtimeLimits, type RealtimeStandIn, startRealtimeStandIn } from "./realtime_stand_in.ts";

/** Running stand-ins; `route` answers the requests that are theirs and returns null for others. */
export interface SupabaseStandIns {
  route(request: Request): Promise<Response> | null;
  realtime: RealtimeStandIn;
  close(): Promise<void>;
}

/** CORS as Supabase's API gateway answers it, so a dashboard served from elsewhere can call the REST stand-in. */
const CORS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type, prefer, accept-profile, " +
    "content-profile, x-supabase-api-version",
  "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
};

/**
 * Starts the REST and Realtime stand-ins on `databaseUrl` (a superuser
 * connection string: only the Realtime feed reads broadcasts on it); every
 * client's request runs on a pool that is the authenticator (`login`).
 */
export async function startSupabaseStandIns(options: {
  databaseUrl: string;
  /**
   * How the client pool is the authenticator: `login` on PostgreSQL (default: the
   * fixture's `authenticator`, no password), `session_authorization` on PGlite.
   */
  login?: AuthenticatorLogin;
  jwtSecret: string;
  /** `notify` on PostgreSQL, `poll` on PGlite (see realtime_feed.ts). */
  feed: "notify" | "poll";
  joinErrorBackoffMs?: number;
  /** The Realtime stand-in's bounds per socket (default: Supabase's documented limits). */
  realtimeLimits?: Partial<RealtimeLimits>;
  /** Connections of the client pool (default 4). */
  poolSize?: number;
}): Promise<SupabaseStandIns> {
  // The feed: one LISTEN connection and one to read rows (PostgreSQL), or one to poll (PGlite).
  const sql = postgres(options.databaseUrl, { max: options.feed === "notify" ? 2 : 1, onnotice: () => {} });
  const login = options.login ?? { kind: "login", user: AUTHENTICATOR };
  const authenticator = connectAuthenticator(options.databaseUrl, login, { max: options.poolSize ?? 4 });
  const rest = createRestStandIn({ authenticator, jwtSecret: options.jwtSecret });
  const realtime = await startRealtimeStandIn({
    sql,
    authenticator,
    jwtSecret: options.jwtSecret,
    feed: options.feed,
    joinErrorBackoffMs: options.joinErrorBackoffMs,
    limits: options.realtimeLimits,
  });
  return {
    realtime,
    route(request) {
      const path = new URL(request.url).pathname;
      if (path === "/realtime/v1/websocket") return realtime.handle(request);
      if (!path.startsWith("/rest/v1/")) return null;
      if (request.method === "OPTIONS") return Promise.resolve(new Response(null, { status: 204, headers: CORS }));
      return rest(request).then((response) => {
        for (const [name, value] of Object.entries(CORS)) response.headers.set(name, value);
        return response;
      });
    },
    async close() {
      await realtime.close();
      await authenticator.end();
      await sql.end({ timeout: 1 });
    },
  };
}
