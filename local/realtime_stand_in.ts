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
import type { Sql } from "postgres";
import type { Authenticator } from "./authenticator.ts";
import type { Claims } from "./jwt.ts";
import {
  closeSoon,
  type Frame,
  frameSize,
  parseFrame,
  push,
  reply,
  send,
  userBroadcastFrame,
} from "./phoenix_frames.ts";
import { type ChannelAuthorizer, connectErrorText, createChannelAuthorizer } from "./realtime_authorization.ts";
import { type DatabaseBroadcast, startRealtimeFeed } from "./realtime_feed.ts";

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

/** The stand-in's state: its settings, its sockets, and the channels subscribed to each topic. */
interface StandIn {
  authorizer: ChannelAuthorizer;
  backoffMs: number;
  limits: RealtimeLimits;
  connections: Set<Connection>;
  subscribers: Map<string, Set<Channel>>;
}

const CONFIRM_TOKEN_MS = 5 * 60 * 1000;

/** Starts the stand-in and its feed of broadcasts from the database. */
export async function startRealtimeStandIn(options: RealtimeStandInOptions): Promise<RealtimeStandIn> {
  const standIn: StandIn = {
    authorizer: createChannelAuthorizer(options.authenticator, options.jwtSecret),
    backoffMs: options.joinErrorBackoffMs ?? 5000,
    limits: { ...REALTIME_LIMITS, ...options.limits },
    connections: new Set(),
    subscribers: new Map(),
  };
  // After a gap in the feed, drop every socket: clients reconnect, rejoin and read the current values again.
  const feed = await startRealtimeFeed(options.sql, {
    mode: options.feed,
    deliver: (message) => deliver(standIn, message),
    onGap: () => dropConnections(standIn),
  });
  return {
    handle: (request) => acceptSocket(standIn, request),
    dropConnections: () => dropConnections(standIn),
    async close() {
      dropConnections(standIn);
      await feed.close();
    },
  };
}

/** Sends a committed broadcast to every channel subscribed to its topic (one frame for all). */
function deliver(standIn: StandIn, message: DatabaseBroadcast): void {
  const channels = standIn.subscribers.get(key(message.private, message.topic));
  if (!channels || channels.size === 0) return;
  let frame: Uint8Array | undefined;
  for (const channel of channels) {
    frame ??= userBroadcastFrame(channel.topic, message);
    send(channel.connection, frame);
  }
}

function dropConnections(standIn: StandIn): void {
  for (const connection of standIn.connections) connection.socket.close(1001, "Going away");
}

/** The socket's upgrade: `vsn=2.0.0` and an `apikey` that is a valid JWT, else an HTTP error as Supabase's. */
async function acceptSocket(standIn: StandIn, request: Request): Promise<Response> {
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
    await standIn.authorizer.verify(apikey);
  } catch (error) {
    return Response.json({ error: connectErrorText(error) }, { status: 401 });
  }
  const { socket, response } = Deno.upgradeWebSocket(request);
  socket.binaryType = "arraybuffer";
  const connection: Connection = { socket, apikey, channels: new Map(), joins: [], closing: false };
  standIn.connections.add(connection);
  socket.onmessage = (event) => onMessage(standIn, connection, event.data);
  socket.onclose = () => {
    standIn.connections.delete(connection);
    for (const channel of connection.channels.values()) remove(standIn, channel);
  };
  socket.onerror = () => {};
  return response;
}

/** A frame from the client: too large closes the socket (1009); binary ones (client broadcasts) are not relayed. */
function onMessage(standIn: StandIn, connection: Connection, data: unknown): void {
  if (connection.closing) return;
  if (frameSize(data, standIn.limits.frameBytes) > standIn.limits.frameBytes) {
    connection.socket.close(1009, "Message too big");
    return;
  }
  const frame = typeof data === "string" ? parseFrame(data) : undefined;
  if (frame) onFrame(standIn, connection, frame);
}

function onFrame(standIn: StandIn, connection: Connection, [joinRef, ref, topic, event, payload]: Frame): void {
  if (topic === "phoenix" && event === "heartbeat") return reply(connection, null, ref, topic, "ok", {});
  if (event === "phx_join") return onJoin(standIn, connection, [joinRef, ref, topic, event, payload]);
  const channel = connection.channels.get(topic);
  if (!channel) return reply(connection, joinRef, ref, topic, "error", { reason: "unmatched topic" });
  if (channel.joinRef !== joinRef) return; // Phoenix ignores messages for an earlier join of the topic

  if (event === "phx_leave") {
    remove(standIn, channel);
    reply(connection, joinRef, ref, topic, "ok", {});
    push(connection, joinRef, joinRef, topic, "phx_close", {});
  } else if (event === "access_token") {
    enqueue(channel, () => refreshToken(standIn, channel, payload?.access_token));
  } else if (ref !== null) {
    reply(connection, joinRef, ref, topic, "error", {
      reason: "The Realtime stand-in relays broadcasts from the database only",
    });
  }
}

/** A join: counted against the socket's joins per second, replacing an earlier join of the same topic. */
function onJoin(standIn: StandIn, connection: Connection, [joinRef, ref, topic, , payload]: Frame): void {
  if (!allowJoin(standIn, connection)) {
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
    remove(standIn, previous);
    push(connection, previous.joinRef, previous.joinRef, topic, "phx_close", {});
  }
  join(standIn, connection, joinRef ?? ref ?? "", ref, topic, payload ?? {});
}

function join(
  standIn: StandIn,
  connection: Connection,
  joinRef: string,
  ref: string | null,
  topic: string,
  payload: Record<string, unknown>,
): void {
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
  const tooMany = connection.channels.size >= standIn.limits.channels;
  connection.channels.set(topic, channel);
  enqueue(channel, async () => {
    const decision = tooMany
      ? { refusal: "ChannelRateLimitReached: Too many channels" }
      : await standIn.authorizer.authorizeJoin({ ...channel, config });
    if (channel.closed) return;
    if ("refusal" in decision) {
      remove(standIn, channel);
      await new Promise((resolve) => setTimeout(resolve, standIn.backoffMs));
      reply(connection, joinRef, ref, topic, "error", { reason: decision.refusal });
      return;
    }
    channel.claims = decision.claims;
    subscribe(standIn, channel);
    scheduleConfirm(standIn, channel);
    reply(connection, joinRef, ref, topic, "ok", { postgres_changes: [] });
  });
}

function subscribe(standIn: StandIn, channel: Channel): void {
  const topicKey = key(channel.private, channel.subTopic);
  let set = standIn.subscribers.get(topicKey);
  if (!set) standIn.subscribers.set(topicKey, set = new Set());
  set.add(channel);
}

/** An `access_token` message: the new token is verified and, on a private channel, probed again. */
async function refreshToken(standIn: StandIn, channel: Channel, token: unknown): Promise<void> {
  // Supabase skips a token equal to the current one; the stand-in probes again whatever the token,
  // so that a member removed from the workspace loses the channel at the client's next token message.
  if (typeof token !== "string" || token.startsWith("sb_")) return;
  let claims: Claims;
  try {
    claims = await standIn.authorizer.verify(token);
  } catch (error) {
    return shutdown(standIn, channel, (error as Error).message);
  }
  if (channel.private) {
    const refusal = await standIn.authorizer.readRefusal(channel.subTopic, claims);
    if (refusal) {
      return shutdown(standIn, channel, refusal.unauthorized ? revokedMessage(channel) : refusal.message);
    }
  }
  channel.token = token;
  channel.claims = claims;
  scheduleConfirm(standIn, channel);
}

/** Realtime's words when a new token may no longer read the topic (`:read_permissions_revoked`). */
function revokedMessage(channel: Channel): string {
  return `You no longer have permission to read from this Channel topic: ${channel.subTopic}`;
}

/** Re-checks the token's expiry every 5 minutes at most, and when it expires. */
function scheduleConfirm(standIn: StandIn, channel: Channel): void {
  clearTimeout(channel.confirmTimer);
  const left = channel.claims.exp * 1000 - Date.now();
  channel.confirmTimer = setTimeout(() => {
    enqueue(channel, async () => {
      try {
        await standIn.authorizer.verify(channel.token);
        scheduleConfirm(standIn, channel);
      } catch (error) {
        shutdown(standIn, channel, (error as Error).message);
      }
    });
  }, Math.max(0, Math.min(CONFIRM_TOKEN_MS, left + 1000)));
}

/** Supabase's shutdown_response: a `system` error, then `phx_close`. */
function shutdown(standIn: StandIn, channel: Channel, message: string): void {
  if (channel.closed) return;
  remove(standIn, channel);
  const { connection, joinRef, topic } = channel;
  push(connection, joinRef, null, topic, "system", {
    extension: "system",
    status: "error",
    message,
    channel: channel.subTopic,
  });
  push(connection, joinRef, joinRef, topic, "phx_close", {});
}

function remove(standIn: StandIn, channel: Channel): void {
  channel.closed = true;
  clearTimeout(channel.confirmTimer);
  if (channel.connection.channels.get(channel.topic) === channel) channel.connection.channels.delete(channel.topic);
  standIn.subscribers.get(key(channel.private, channel.subTopic))?.delete(channel);
}

/** Counts a join; false when the socket made `joinsPerSecond` joins in the last second already. */
function allowJoin(standIn: StandIn, connection: Connection): boolean {
  const now = performance.now();
  while (connection.joins.length > 0 && connection.joins[0]! <= now - 1000) connection.joins.shift();
  if (connection.joins.length >= standIn.limits.joinsPerSecond) return false;
  connection.joins.push(now);
  return true;
}

function enqueue(channel: Channel, task: () => Promise<void>): void {
  channel.queue = channel.queue.then(() => channel.closed ? undefined : task()).catch(
    (error) => console.error(`Realtime stand-in: ${(error as Error).message}`),
  );
}

function tokenOf(connection: Connection, accessToken: unknown): string {
  return typeof accessToken === "string" && !accessToken.startsWith("sb_") ? accessToken : connection.apikey;
}

function key(isPrivate: boolean, topic: string): string {
  return `${isPrivate ? "private" : "public"}:${topic}`;
}
