/**
 * A stand-in for Supabase Realtime at `/realtime/v1/websocket`, as narrow as
 * the twin dashboards need: Broadcast from Database on private (and public)
 * channels. It speaks what realtime-js 2.119 speaks (Phoenix channels,
 * `vsn=2.0.0`: JSON array frames `[join_ref, ref, topic, event, payload]`, and
 * binary user-broadcast frames for broadcasts) and answers as Supabase's
 * server does (`supabase/realtime`, lib/realtime_web/channels/realtime_channel.ex):
 *
 * - socket: the `apikey` is a JWT with `role` and `exp`, else HTTP 401 `{error}`;
 * - `phx_join`: the `access_token` is verified (HS256, `role` and `exp`
 *   required); a private channel is authorized by the read probe against the
 *   project's policy on `realtime.messages` (a probe row, then as the token's
 *   role with `request.jwt.claims` and `realtime.topic` set, rolled back), on
 *   the authenticator's connection: a role it cannot become (`postgres`) is
 *   refused by PostgreSQL, answered `Unauthorized` as Supabase does; a
 *   refused join is answered `{status: "error", response: {reason}}` after
 *   Supabase's back-off (5 s; `joinErrorBackoffMs`);
 * - `access_token`: the token is verified and the read probe runs again, on
 *   every such message (Supabase skips a token equal to the current one; the
 *   stand-in does not, see docs/realtime.md); a channel whose token or access
 *   is gone gets a `system` error and `phx_close`; the token's expiry is
 *   checked at least every 5 minutes (the JWT only, as Supabase);
 * - `heartbeat` on `phoenix`, `phx_leave`, `phx_close`;
 * - broadcasts that `realtime.send` stored reach the channels of their topic
 *   after commit, in commit order, with `meta.id` (see realtime_feed.ts).
 *
 * - bounds as Supabase documents them (docs "Realtime Limits"): at most 100
 *   channels per socket (`ChannelRateLimitReached: Too many channels`), at most
 *   100 joins in any second per socket (`ClientJoinRateLimitReached: Too many
 *   joins per second`, then the socket is closed, as Realtime disconnects it),
 *   and frames of at most 256,500 bytes (the free plan's 256 KB payload plus
 *   Realtime's 500 bytes of padding; a larger one closes the socket, 1009).
 *
 * Not Supabase's: no presence, no postgres_changes, no broadcasts from
 * clients, no replay; the limits are per socket (Supabase counts joins per
 * project); one process. Delivery is at most once.
 *
 * @module
 */
import postgres, { type Sql } from "postgres";
import { type Authenticator, becomeRole } from "./authenticator.ts";
import { type Claims, TokenError, verifyToken } from "./jwt.ts";
import { type DatabaseBroadcast, type RealtimeFeed, startRealtimeFeed } from "./realtime_feed.ts";

/** Settings of the Realtime stand-in. */
export interface RealtimeStandInOptions {
  /** A privileged connection to the project database: the feed reads broadcasts on it, nothing else. */
  sql: Sql;
  /** The authenticator's pool: every probe for a client runs on it, as the token's role. */
  authenticator: Authenticator;
  jwtSecret: string;
  /** How broadcasts are read: `notify` (PostgreSQL) or `poll` (PGlite). */
  feed: "notify" | "poll";
  /** Pause before a refused join is answered (Supabase: CHANNEL_ERROR_BACKOFF_MS, 5000). */
  joinErrorBackoffMs?: number;
  /** Bounds per socket; defaults: {@linkcode REALTIME_LIMITS}. */
  limits?: Partial<RealtimeLimits>;
}

/** What one socket may do. */
export interface RealtimeLimits {
  channels: number;
  joinsPerSecond: number;
  frameBytes: number;
}

/** Supabase's documented limits (free plan): 100 channels per connection, 100 joins a second, 256 KB payloads. */
export const REALTIME_LIMITS: RealtimeLimits = { channels: 100, joinsPerSecond: 100, frameBytes: 256_000 + 500 };

/** A running Realtime stand-in. */
export interface RealtimeStandIn {
  /** Upgrades a request for `/realtime/v1/websocket`. */
  handle(request: Request): Promise<Response>;
  /** Closes every socket, as a network drop would (clients reconnect). */
  dropConnections(): void;
  close(): Promise<void>;
}

interface Channel {
  topic: string;
  subTopic: string;
  joinRef: string;
  private: boolean;
  token: string;
  claims: Claims;
  confirmTimer?: ReturnType<typeof setTimeout>;
  /** Frames of this channel are handled one after another. */
  queue: Promise<void>;
  connection: Connection;
  closed: boolean;
}

interface Connection {
  socket: WebSocket;
  apikey: string;
  channels: Map<string, Channel>;
  /** When its joins of the last second came (ms, oldest first). */
  joins: number[];
  /** Closing: what it sends is ignored. */
  closing: boolean;
}

type Frame = [string | null, string | null, string, string, Record<string, unknown>];

const CONFIRM_TOKEN_MS = 5 * 60 * 1000;
const encoder = new TextEncoder();

/** Starts the stand-in and its feed of broadcasts from the database. */
export async function startRealtimeStandIn(options: RealtimeStandInOptions): Promise<RealtimeStandIn> {
  const { sql, authenticator, jwtSecret } = options;
  const backoffMs = options.joinErrorBackoffMs ?? 5000;
  const limits = { ...REALTIME_LIMITS, ...options.limits };
  const connections = new Set<Connection>();
  const subscribers = new Map<string, Set<Channel>>();

  // After a gap in the feed, drop every socket: clients reconnect, rejoin and read the current values again.
  const feed: RealtimeFeed = await startRealtimeFeed(sql, { mode: options.feed, deliver, onGap: dropConnections });

  function deliver(message: DatabaseBroadcast) {
    const channels = subscribers.get(key(message.private, message.topic));
    if (!channels || channels.size === 0) return;
    let frame: Uint8Array | undefined;
    for (const channel of channels) {
      frame ??= userBroadcastFrame(channel.topic, message);
      send(channel.connection, frame);
    }
  }

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return Response.json({ error: "Expected a WebSocket upgrade" }, { status: 400 });
    }
    if (url.searchParams.get("vsn") !== "2.0.0") {
      return Response.json({ error: "The Realtime stand-in speaks vsn=2.0.0 only" }, { status: 400 });
    }
    const apikey = url.searchParams.get("apikey") ?? request.headers.get("apikey");
    if (!apikey) return Response.json({ error: "API key is missing" }, { status: 401 });
    try {
      await verifyToken(apikey, jwtSecret);
    } catch (error) {
      return Response.json({ error: connectErrorText(error) }, { status: 401 });
    }
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.binaryType = "arraybuffer";
    const connection: Connection = { socket, apikey, channels: new Map(), joins: [], closing: false };
    connections.add(connection);
    socket.onmessage = (event) => {
      if (connection.closing) return;
      if (frameSize(event.data, limits.frameBytes) > limits.frameBytes) {
        socket.close(1009, "Message too big");
        return;
      }
      if (typeof event.data !== "string") return; // binary broadcasts from clients are not relayed
      let frame: Frame;
      try {
        frame = JSON.parse(event.data);
        if (!Array.isArray(frame) || frame.length !== 5 || typeof frame[2] !== "string") throw new Error();
      } catch {
        return;
      }
      onFrame(connection, frame);
    };
    socket.onclose = () => {
      connections.delete(connection);
      for (const channel of connection.channels.values()) remove(channel);
    };
    socket.onerror = () => {};
    return response;
  }

  function onFrame(connection: Connection, [joinRef, ref, topic, event, payload]: Frame) {
    if (topic === "phoenix" && event === "heartbeat") {
      reply(connection, null, ref, topic, "ok", {});
      return;
    }
    if (event === "phx_join") {
      if (!allowJoin(connection)) {
        // Realtime answers, then disconnects the socket.
        reply(connection, joinRef, ref, topic, "error", {
          reason: "ClientJoinRateLimitReached: Too many joins per second",
        });
        closeSoon(connection, 1000, "Too many joins per second");
        return;
      }
      const previous = connection.channels.get(topic);
      if (previous) {
        // Phoenix closes the earlier join of the same topic.
        remove(previous);
        push(connection, previous.joinRef, previous.joinRef, topic, "phx_close", {});
      }
      join(connection, joinRef ?? ref ?? "", ref, topic, payload ?? {});
      return;
    }
    const channel = connection.channels.get(topic);
    if (!channel) {
      reply(connection, joinRef, ref, topic, "error", { reason: "unmatched topic" });
      return;
    }
    if (channel.joinRef !== joinRef) return; // Phoenix ignores messages for an earlier join of the topic

    if (event === "phx_leave") {
      remove(channel);
      reply(connection, joinRef, ref, topic, "ok", {});
      push(connection, joinRef, joinRef, topic, "phx_close", {});
    } else if (event === "access_token") {
      enqueue(channel, () => refreshToken(channel, payload?.access_token));
    } else if (ref !== null) {
      reply(connection, joinRef, ref, topic, "error", {
        reason: "The Realtime stand-in relays broadcasts from the database only",
      });
    }
  }

  function join(
    connection: Connection,
    joinRef: string,
    ref: string | null,
    topic: string,
    payload: Record<string, unknown>,
  ) {
    const config = (payload.config ?? {}) as { private?: boolean; postgres_changes?: unknown[] };
    const channel: Channel = {
      topic,
      subTopic: topic.replace(/^realtime:/, ""),
      joinRef,
      private: config.private === true,
      token: tokenOf(connection, payload.access_token),
      claims: { role: "", exp: 0 },
      queue: Promise.resolve(),
      connection,
      closed: false,
    };
    const tooMany = connection.channels.size >= limits.channels;
    connection.channels.set(topic, channel);
    enqueue(channel, async () => {
      const refusal = tooMany ? "ChannelRateLimitReached: Too many channels" : await authorizeJoin(channel, config);
      if (channel.closed) return;
      if (refusal) {
        remove(channel);
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
        reply(connection, joinRef, ref, topic, "error", { reason: refusal });
        return;
      }
      let set = subscribers.get(key(channel.private, channel.subTopic));
      if (!set) subscribers.set(key(channel.private, channel.subTopic), set = new Set());
      set.add(channel);
      scheduleConfirm(channel);
      reply(connection, joinRef, ref, topic, "ok", { postgres_changes: [] });
    });
  }

  /** Why the join is refused (Supabase's reason text), or null when it is allowed. */
  async function authorizeJoin(
    channel: Channel,
    config: { postgres_changes?: unknown[] },
  ): Promise<string | null> {
    if (!channel.topic.startsWith("realtime:")) return "unmatched topic";
    if (channel.subTopic === "") return "TopicNameRequired: You must provide a topic name";
    try {
      channel.claims = await verifyToken(channel.token, jwtSecret);
    } catch (error) {
      return joinTokenReason(error);
    }
    if (Array.isArray(config.postgres_changes) && config.postgres_changes.length > 0) {
      return "UnknownErrorOnChannel: the Realtime stand-in does not serve postgres_changes (use broadcast)";
    }
    if (!channel.private) return null;
    const refusal = await readRefusal(channel.subTopic, channel.claims);
    return refusal && (refusal.unauthorized ? `Unauthorized: ${refusal.message}` : refusal.message);
  }

  /**
   * Why the token may not read `topic` (null: it may), as Realtime words it: a
   * policy that says no, or any PostgreSQL error of the probe (a role the
   * authenticator cannot become, say: Realtime's rls_policy_error), is
   * unauthorized; a database out of reach is not.
   */
  async function readRefusal(
    topic: string,
    claims: Claims,
  ): Promise<{ unauthorized: boolean; message: string } | null> {
    try {
      if (await canRead(topic, claims)) return null;
    } catch (error) {
      if (!(error instanceof postgres.PostgresError)) {
        return { unauthorized: false, message: "Realtime was unable to connect to the project database" };
      }
    }
    return { unauthorized: true, message: `You do not have permissions to read from this Channel topic: ${topic}` };
  }

  async function refreshToken(channel: Channel, token: unknown) {
    // Supabase skips a token equal to the current one; the stand-in probes again whatever the token,
    // so that a member removed from the workspace loses the channel at the client's next token message.
    if (typeof token !== "string" || token.startsWith("sb_")) return;
    let claims: Claims;
    try {
      claims = await verifyToken(token, jwtSecret);
    } catch (error) {
      return shutdown(channel, (error as Error).message);
    }
    if (channel.private) {
      const refusal = await readRefusal(channel.subTopic, claims);
      if (refusal) return shutdown(channel, refusal.unauthorized ? revokedMessage(channel) : refusal.message);
    }
    channel.token = token;
    channel.claims = claims;
    scheduleConfirm(channel);
  }

  /** Realtime's words when a new token may no longer read the topic (`:read_permissions_revoked`). */
  function revokedMessage(channel: Channel): string {
    return `You no longer have permission to read from this Channel topic: ${channel.subTopic}`;
  }

  /** Re-checks the token's expiry every 5 minutes at most, and when it expires. */
  function scheduleConfirm(channel: Channel) {
    clearTimeout(channel.confirmTimer);
    const left = channel.claims.exp * 1000 - Date.now();
    channel.confirmTimer = setTimeout(() => {
      enqueue(channel, async () => {
        try {
          await verifyToken(channel.token, jwtSecret);
          scheduleConfirm(channel);
        } catch (error) {
          shutdown(channel, (error as Error).message);
        }
      });
    }, Math.max(0, Math.min(CONFIRM_TOKEN_MS, left + 1000)));
  }

  /**
   * The read probe of Realtime.Tenants.Authorization: may this token's role read
   * the topic's broadcasts? On the authenticator's connection: the probe row is
   * inserted as service_role (Realtime inserts it as its own database user), then
   * the select runs as the token's role; all of it rolled back.
   */
  async function canRead(topic: string, claims: Claims): Promise<boolean> {
    const id = crypto.randomUUID();
    let allowed = false;
    await authenticator.begin(async (tx) => {
      await becomeRole(tx, "service_role");
      await tx`insert into realtime.messages (id, topic, extension) values (${id}, ${topic}, 'broadcast')`;
      await becomeRole(tx, claims.role, {
        "realtime.topic": topic,
        "request.jwt.claims": JSON.stringify(claims),
        "request.jwt.claim.sub": claims.sub ?? "",
        "request.jwt.claim.role": claims.role,
        "request.headers": "{}",
      });
      allowed = (await tx`select id from realtime.messages where id = ${id}`).length === 1;
      throw new Rollback();
    }).catch((error) => {
      if (!(error instanceof Rollback)) throw error;
    });
    return allowed;
  }

  /** Supabase's shutdown_response: a `system` error, then `phx_close`. */
  function shutdown(channel: Channel, message: string) {
    if (channel.closed) return;
    remove(channel);
    const { connection, joinRef, topic } = channel;
    push(connection, joinRef, null, topic, "system", {
      extension: "system",
      status: "error",
      message,
      channel: channel.subTopic,
    });
    push(connection, joinRef, joinRef, topic, "phx_close", {});
  }

  function remove(channel: Channel) {
    channel.closed = true;
    clearTimeout(channel.confirmTimer);
    if (channel.connection.channels.get(channel.topic) === channel) channel.connection.channels.delete(channel.topic);
    subscribers.get(key(channel.private, channel.subTopic))?.delete(channel);
  }

  /** Counts a join; false when the socket made `joinsPerSecond` joins in the last second already. */
  function allowJoin(connection: Connection): boolean {
    const now = performance.now();
    while (connection.joins.length > 0 && connection.joins[0]! <= now - 1000) connection.joins.shift();
    if (connection.joins.length >= limits.joinsPerSecond) return false;
    connection.joins.push(now);
    return true;
  }

  function enqueue(channel: Channel, task: () => Promise<void>) {
    channel.queue = channel.queue.then(() => channel.closed ? undefined : task()).catch(
      (error) => console.error(`Realtime stand-in: ${(error as Error).message}`),
    );
  }

  function tokenOf(connection: Connection, accessToken: unknown): string {
    return typeof accessToken === "string" && !accessToken.startsWith("sb_") ? accessToken : connection.apikey;
  }

  function dropConnections() {
    for (const connection of connections) connection.socket.close(1001, "Going away");
  }

  return {
    handle,
    dropConnections,
    async close() {
      for (const connection of connections) connection.socket.close(1001, "Going away");
      await feed.close();
    },
  };
}

class Rollback extends Error {}

/** A frame's size in bytes (a string's UTF-8 length, counted only when it may be over `limit`). */
function frameSize(data: unknown, limit: number): number {
  if (typeof data === "string") return data.length * 3 <= limit ? data.length : encoder.encode(data).length;
  if (data instanceof ArrayBuffer) return data.byteLength;
  return data instanceof Blob ? data.size : 0;
}

function key(isPrivate: boolean, topic: string): string {
  return `${isPrivate ? "private" : "public"}:${topic}`;
}

/** RealtimeWeb.UserSocket.handle_error's text for a refused socket token. */
function connectErrorText(error: unknown): string {
  if (!(error instanceof TokenError)) return "The token provided is not a valid JWT";
  return error.reason === "expired" ? "Token has expired" : error.message;
}

/** The join reason Supabase gives for a refused token (log_error / maybe_log_warning codes). */
function joinTokenReason(error: unknown): string {
  if (!(error instanceof TokenError)) return "UnknownErrorOnChannel: Unknown Error on Channel";
  switch (error.reason) {
    case "expired":
    case "missing_claims":
      return `InvalidJWTToken: ${error.message}`;
    case "signature":
      return `JwtSignatureError: ${error.message}`;
    default:
      return `MalformedJWT: ${error.message}`;
  }
}

function reply(
  connection: Connection,
  joinRef: string | null,
  ref: string | null,
  topic: string,
  status: string,
  response: Record<string, unknown>,
) {
  push(connection, joinRef, ref, topic, "phx_reply", { status, response });
}

function push(
  connection: Connection,
  joinRef: string | null,
  ref: string | null,
  topic: string,
  event: string,
  payload: Record<string, unknown>,
) {
  send(connection, JSON.stringify([joinRef, ref, topic, event, payload]));
}

/**
 * Ignores the socket from now on and closes it a second later: Deno's close()
 * drops the frames still queued for sending (checked with Deno 2), and
 * bufferedAmount does not count them, so the refusal is given time to arrive.
 */
function closeSoon(connection: Connection, code: number, reason: string) {
  connection.closing = true;
  setTimeout(() => connection.socket.close(code, reason), 1000);
}

function send(connection: Connection, data: string | Uint8Array) {
  if (connection.socket.readyState === WebSocket.OPEN) connection.socket.send(data);
}

/**
 * RealtimeWeb.Socket.V2Serializer's user broadcast (kind 4): sizes of topic,
 * event and metadata, the payload encoding (1: JSON), then the bytes.
 */
function userBroadcastFrame(topic: string, message: DatabaseBroadcast): Uint8Array {
  const parts = [topic, message.event, JSON.stringify({ id: message.id })].map((s) => encoder.encode(s));
  const payload = encoder.encode(message.payload);
  if (parts.some((p) => p.length > 255)) throw new Error(`Cannot broadcast on ${topic}: topic or event too long`);
  const header = [4, parts[0]!.length, parts[1]!.length, parts[2]!.length, 1];
  const frame = new Uint8Array(header.length + parts.reduce((n, p) => n + p.length, 0) + payload.length);
  frame.set(header, 0);
  let offset = header.length;
  for (const part of [...parts, payload]) {
    frame.set(part, offset);
    offset += part.length;
  }
  return frame;
}
