/**
 * local/realtime_stand_in.ts frame by frame, with a bare WebSocket: what
 * realtime-js 2.119 sends and what Supabase Realtime answers (Phoenix
 * `vsn=2.0.0` arrays, binary user broadcasts).
 */
import assert from "node:assert/strict";
import { mintToken } from "../../local/jwt.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { asRole, type Seeded, seedWorkspace } from "../support/seed.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

type Frame = [string | null, string | null, string, string, Record<string, unknown>];

/** A raw socket to the stand-in that queues what it receives (binary frames decoded as realtime-js does). */
async function connect(stack: TestStack) {
  const url = `${stack.url.replace("http", "ws")}/realtime/v1/websocket?apikey=${stack.anonKey}&vsn=2.0.0`;
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  const received: (Frame | { binary: Record<string, unknown> })[] = [];
  socket.onmessage = (event) => {
    received.push(
      typeof event.data === "string" ? JSON.parse(event.data) : { binary: decodeUserBroadcast(event.data) },
    );
  };
  const closed = new Promise<CloseEvent>((resolve) => socket.addEventListener("close", resolve));
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  return {
    send: (frame: Frame) => socket.send(JSON.stringify(frame)),
    sendText: (text: string) => socket.send(text),
    /** The close event, once the server closed the socket (rejects after 10 s). */
    async closed(): Promise<CloseEvent> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("the socket is still open after 10 s")), 10_000);
      });
      try {
        return await Promise.race([closed, late]);
      } finally {
        clearTimeout(timer);
      }
    },
    /** Every frame received so far, leaving none for `next()`. */
    drain: () => received.splice(0),
    async next() {
      for (let i = 0; i < 100 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      const frame = received.shift();
      if (!frame) throw new Error("no frame within 5 s");
      return frame;
    },
    close: () => socket.close(),
  };
}

/** RealtimeWeb.Socket.V2Serializer's user broadcast, as realtime-js's serializer decodes it. */
function decodeUserBroadcast(buffer: ArrayBuffer): Record<string, unknown> {
  const bytes = new Uint8Array(buffer);
  const [kind, topicSize, eventSize, metaSize, encoding] = bytes;
  const text = (from: number, to?: number) => new TextDecoder().decode(bytes.slice(from, to));
  let offset = 5;
  const topic = text(offset, offset += topicSize!);
  const event = text(offset, offset += eventSize!);
  const meta = JSON.parse(text(offset, offset += metaSize!));
  return { kind, encoding, topic, event, meta, payload: JSON.parse(text(offset)) };
}

interface TopicContext {
  db: TestDatabase;
  s: Seeded;
  stack: TestStack;
  topic: string;
  ws: Awaited<ReturnType<typeof connect>>;
}

/** A seeded database, the stack on it, its datasource's private topic and a raw socket, for `fn`; all closed after. */
async function onTopic(fn: (context: TopicContext) => Promise<void>): Promise<void> {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  const ws = await connect(stack);
  try {
    await fn({ db, s, stack, topic: `realtime:datasource:${s.datasourceId}`, ws });
  } finally {
    ws.close();
  }
}

Deno.test("realtime stand-in: heartbeat, joins refused and accepted, broadcast frame, leave", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  const topic = `realtime:datasource:${s.datasourceId}`;
  const config = { broadcast: { ack: false, self: false }, presence: { key: "", enabled: false }, private: true };
  const ws = await connect(stack);
  try {
    ws.send([null, "1", "phoenix", "heartbeat", {}]);
    assert.deepEqual(await ws.next(), [null, "1", "phoenix", "phx_reply", { status: "ok", response: {} }]);

    // Without an access_token the socket's apikey (anon) decides: refused by the policy.
    ws.send(["2", "2", topic, "phx_join", { config }]);
    assert.deepEqual(await ws.next(), ["2", "2", topic, "phx_reply", {
      status: "error",
      response: {
        reason: `Unauthorized: You do not have permissions to read from this Channel topic: ${topic.slice(9)}`,
      },
    }]);

    ws.send(["3", "3", "realtime:", "phx_join", { config, access_token: await stack.tokenFor(s.viewer) }]);
    assert.deepEqual(await ws.next(), ["3", "3", "realtime:", "phx_reply", {
      status: "error",
      response: { reason: "TopicNameRequired: You must provide a topic name" },
    }]);

    ws.send(["4", "4", topic, "phx_join", { config, access_token: await stack.tokenFor(s.viewer) }]);
    assert.deepEqual(await ws.next(), ["4", "4", topic, "phx_reply", {
      status: "ok",
      response: { postgres_changes: [] },
    }]);

    await asRole(
      db.sql,
      { role: "service_role" },
      (tx) => tx`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${tx.json({ temperature: 3.5 })})`,
    );
    const broadcast = await ws.next() as { binary: Record<string, unknown> };
    const payload = broadcast.binary.payload as Record<string, unknown>;
    assert.deepEqual({ ...broadcast.binary, payload: undefined }, {
      kind: 4,
      encoding: 1,
      topic,
      event: "values",
      meta: { id: payload.id },
      payload: undefined,
    });
    assert.deepEqual(payload.values, { temperature: 3.5 });

    ws.send(["9", "5", "realtime:elsewhere", "broadcast", {}]);
    assert.deepEqual(await ws.next(), ["9", "5", "realtime:elsewhere", "phx_reply", {
      status: "error",
      response: { reason: "unmatched topic" },
    }]);

    ws.send(["4", "6", topic, "phx_leave", {}]);
    assert.deepEqual(await ws.next(), ["4", "6", topic, "phx_reply", { status: "ok", response: {} }]);
    assert.deepEqual(await ws.next(), ["4", "4", topic, "phx_close", {}]);
  } finally {
    ws.close();
  }
});

Deno.test("realtime stand-in: an expired token given later closes the channel with a system message", () =>
  onTopic(async ({ s, stack, topic, ws }) => {
    ws.send(["1", "1", topic, "phx_join", { config: { private: true }, access_token: await stack.tokenFor(s.owner) }]);
    assert.equal(((await ws.next()) as Frame)[4].status, "ok");
    ws.send(["1", "2", topic, "access_token", { access_token: await stack.tokenFor(s.owner, { expiresIn: -10 }) }]);
    const [joinRef, ref, frameTopic, event, payload] = (await ws.next()) as Frame;
    assert.deepEqual([joinRef, ref, frameTopic, event], ["1", null, topic, "system"]);
    assert.deepEqual({ ...payload, message: undefined }, {
      extension: "system",
      status: "error",
      channel: topic.slice(9),
      message: undefined,
    });
    assert.match(payload.message as string, /^Token has expired \d+ seconds ago$/);
    assert.deepEqual(await ws.next(), ["1", "1", topic, "phx_close", {}]);
  }));

Deno.test("realtime stand-in: a member removed from the workspace loses the channel at the next access_token, same token or new", () =>
  onTopic(async ({ db, s, stack, topic, ws }) => {
    const token = await stack.tokenFor(s.viewer);
    ws.send(["1", "1", topic, "phx_join", { config: { private: true }, access_token: token }]);
    assert.equal(((await ws.next()) as Frame)[4].status, "ok");
    ws.send(["1", "2", topic, "access_token", { access_token: token }]);
    await asRole(
      db.sql,
      { role: "service_role" },
      (tx) => tx`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${tx.json({ temperature: 1 })})`,
    );
    assert.ok("binary" in await ws.next(), "a member's same token keeps the channel");

    await db.sql`delete from public.workspace_members where user_id = ${s.viewer}`;
    ws.send(["1", "4", topic, "access_token", { access_token: token }]);
    const [, ref, frameTopic, event, payload] = (await ws.next()) as Frame;
    assert.deepEqual([ref, frameTopic, event, payload], [null, topic, "system", {
      extension: "system",
      status: "error",
      message: `You no longer have permission to read from this Channel topic: ${topic.slice(9)}`,
      channel: topic.slice(9),
    }]);
    assert.deepEqual(await ws.next(), ["1", "1", topic, "phx_close", {}]);

    // A new token of the removed user (a refresh) is refused the same way on a fresh join.
    ws.send(["5", "5", topic, "phx_join", { config: { private: true }, access_token: await stack.tokenFor(s.viewer) }]);
    assert.equal(((await ws.next()) as Frame)[4].status, "error");
  }));

Deno.test("realtime stand-in: a socket without a valid apikey is refused with Supabase's 401", async () => {
  await using db = await createTestDatabase();
  await using stack = await startTestStack(db.url);
  for (
    const [query, error] of [["vsn=2.0.0", "API key is missing"], [
      "apikey=nope&vsn=2.0.0",
      "The token provided is not a valid JWT",
    ]]
  ) {
    const res = await stack.standIns.realtime.handle(
      new Request(`${stack.url}/realtime/v1/websocket?${query}`, { headers: { upgrade: "websocket" } }),
    );
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { error });
  }
});

Deno.test("realtime stand-in: a token claiming postgres or an unknown role is refused a private channel", () =>
  onTopic(async ({ s, stack, topic, ws }) => {
    for (const [ref, role] of [["1", "postgres"], ["2", "nobody"]]) {
      const token = await mintToken(stack.jwtSecret, { role, sub: s.owner });
      ws.send([ref!, ref!, topic, "phx_join", { config: { private: true }, access_token: token }]);
      assert.deepEqual(await ws.next(), [ref, ref, topic, "phx_reply", {
        status: "error",
        response: {
          reason: `Unauthorized: You do not have permissions to read from this Channel topic: ${topic.slice(9)}`,
        },
      }]);
    }
  }));

Deno.test("realtime stand-in: at most 100 channels per socket (ChannelRateLimitReached), as Supabase", async () => {
  await using db = await createTestDatabase();
  await using stack = await startTestStack(db.url, { realtimeLimits: { joinsPerSecond: 1000 } });
  const ws = await connect(stack);
  try {
    for (let i = 0; i < 100; i++) ws.send([`${i}`, `${i}`, `realtime:room-${i}`, "phx_join", { config: {} }]);
    for (let i = 0; i < 100; i++) assert.equal(((await ws.next()) as Frame)[4].status, "ok", `join ${i}`);
    ws.send(["100", "100", "realtime:room-100", "phx_join", { config: {} }]);
    assert.deepEqual(await ws.next(), ["100", "100", "realtime:room-100", "phx_reply", {
      status: "error",
      response: { reason: "ChannelRateLimitReached: Too many channels" },
    }]);
    // Rejoining a topic it holds is not one more channel.
    ws.send(["101", "101", "realtime:room-7", "phx_join", { config: {} }]);
    assert.deepEqual(await ws.next(), ["7", "7", "realtime:room-7", "phx_close", {}]);
    assert.equal(((await ws.next()) as Frame)[4].status, "ok");
  } finally {
    ws.close();
  }
});

Deno.test("realtime stand-in: more than 100 joins in a second on a socket are refused and the socket closed", async () => {
  await using db = await createTestDatabase();
  await using stack = await startTestStack(db.url);
  const ws = await connect(stack);
  // One burst of 300 joins of one topic: far more than 100 arrive within any second.
  for (let i = 0; i < 300; i++) ws.send([`${i}`, `${i}`, "realtime:room", "phx_join", { config: {} }]);
  assert.equal((await ws.closed()).code, 1000);
  const refusals = ws.drain().filter((frame) =>
    Array.isArray(frame) && frame[3] === "phx_reply" && frame[4].status === "error"
  ) as Frame[];
  assert.equal(refusals.length, 1, "one join was refused, then the socket was closed");
  assert.deepEqual(refusals[0]![4], {
    status: "error",
    response: { reason: "ClientJoinRateLimitReached: Too many joins per second" },
  });
});

Deno.test("realtime stand-in: a frame over 256,500 bytes closes the socket (1009)", async () => {
  await using db = await createTestDatabase();
  await using stack = await startTestStack(db.url);
  const ws = await connect(stack);
  ws.sendText(JSON.stringify([null, "1", "phoenix", "heartbeat", { pad: "x".repeat(256_500) }]));
  assert.equal((await ws.closed()).code, 1009);
});
