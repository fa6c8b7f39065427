/**
 * A TCP proxy in front of the test PostgreSQL that sees the store's traffic:
 * it records the size of each simple-protocol query (`Q` message), and, once
 * armed, lets the next query naming `ingest_write` run and commit, then drops
 * the connection when the server's answer is complete (its ReadyForQuery,
 * sent after the commit) instead of passing the answer on.
 *
 * @module
 */

/** A running proxy; `url` is the database's URL through it. */
export interface PostgresProxy extends Disposable {
  url: string;
  /** Byte length of every `Q` message sent through the proxy, in order. */
  queries: number[];
  /** Drops the connection after the next `ingest_write*` query has committed. */
  arm(): void;
  /** How many answers were dropped. */
  readonly dropped: number;
}

/** Starts a proxy to the database at `databaseUrl`. */
export function startPostgresProxy(databaseUrl: string): PostgresProxy {
  const target = new URL(databaseUrl);
  const destination = { hostname: target.hostname, port: Number(target.port) };
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections = new Set<Deno.Conn>();
  const state = { armed: false, dropped: 0, queries: [] as number[] };

  function close(c: Deno.Conn): void {
    connections.delete(c);
    try {
      c.close();
    } catch { /* closed already */ }
  }

  async function serve(client: Deno.Conn): Promise<void> {
    const server = await Deno.connect(destination);
    connections.add(client).add(server);
    const doomed = { now: false, held: [] as number[] };
    const messages = messageReader((type, length, start) => {
      if (type !== 0x51) return; // 'Q'
      state.queries.push(length);
      if (state.armed && new TextDecoder().decode(start).includes("ingest_write")) {
        state.armed = false;
        doomed.now = true;
      }
    });
    const toServer = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        messages(chunk);
        controller.enqueue(chunk);
      },
    });
    const toClient = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        if (!doomed.now) return controller.enqueue(chunk);
        doomed.held.push(...chunk);
        const held = doomed.held;
        // ReadyForQuery: 'Z', length 5, status; the last message of the answer, after the commit.
        if (held.length >= 6 && held[held.length - 6] === 0x5a && held[held.length - 2] === 5) {
          state.dropped++;
          close(client);
          close(server);
        }
      },
    });
    client.readable.pipeThrough(toServer).pipeTo(server.writable).catch(() => {});
    server.readable.pipeThrough(toClient).pipeTo(client.writable).catch(() => {});
  }

  (async () => {
    for await (const client of listener) serve(client).catch(() => close(client));
  })().catch(() => {});

  const url = new URL(databaseUrl);
  url.hostname = "127.0.0.1";
  url.port = String((listener.addr as Deno.NetAddr).port);
  return {
    url: url.toString(),
    queries: state.queries,
    arm: () => state.armed = true,
    get dropped() {
      return state.dropped;
    },
    [Symbol.dispose]() {
      listener.close();
      for (const c of connections) close(c);
    },
  };
}

/**
 * Splits a client's byte stream into protocol messages: the startup message
 * (a length, no type), then a type byte and a length each. Calls `onMessage`
 * with each one's type (0 for the startup message), length and first bytes.
 */
function messageReader(onMessage: (type: number, length: number, start: Uint8Array) => void) {
  let header: number[] = [];
  let remaining = 0;
  let started = false;
  let current = { type: 0, length: 0, start: [] as number[] };
  return (chunk: Uint8Array): void => {
    let i = 0;
    while (i < chunk.length) {
      if (remaining > 0) {
        const take = Math.min(remaining, chunk.length - i);
        if (current.start.length < 256) current.start.push(...chunk.subarray(i, i + Math.min(take, 256)));
        remaining -= take;
        i += take;
        if (remaining === 0) onMessage(current.type, current.length, Uint8Array.from(current.start));
        continue;
      }
      header.push(chunk[i++]!);
      const size = started ? 5 : 4;
      if (header.length < size) continue;
      const type = started ? header[0]! : 0;
      const length = new DataView(Uint8Array.from(header.slice(size - 4)).buffer).getInt32(0);
      current = { type, length, start: [] };
      remaining = length - 4;
      started = true;
      header = [];
      if (remaining === 0) onMessage(type, length, new Uint8Array());
    }
  };
}
