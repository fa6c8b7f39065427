/**
 * The broadcasts that `realtime.send` stores, read back in commit order for
 * the Realtime stand-in. Supabase Realtime reads them from a logical
 * replication slot; the stand-in has two simpler sources:
 *
 * - `notify` (any PostgreSQL): the platform fixture's trigger notifies each new
 *   `realtime.messages` id on channel `realtime_stand_in`; PostgreSQL delivers
 *   notifications at commit, in commit order, and never for a rolled-back
 *   transaction. The feed reads the rows by id, many at a time.
 * - `poll` (PGlite): pglite-socket does not forward notifications to other
 *   connections (checked with 0.2.17), but PGlite runs one transaction at a
 *   time, so `inserted_at` (the transaction's start) never goes backwards in
 *   commit order: the feed polls for rows at or after the last one it saw.
 *
 * @module
 */
import type { Sql } from "postgres";

/** A broadcast from the database: its payload is the JSON text stored in realtime.messages. */
export interface DatabaseBroadcast {
  id: string;
  topic: string;
  event: string;
  private: boolean;
  payload: string;
}

/** A running feed; `close()` stops it. */
export interface RealtimeFeed {
  close(): Promise<void>;
}

/** Starts reading broadcasts from `sql`, calling `deliver` for each, in commit order. */
export async function startRealtimeFeed(
  sql: Sql,
  options: {
    mode: "notify" | "poll";
    deliver: (message: DatabaseBroadcast) => void;
    /** Called when the feed listens again after its connection dropped: broadcasts in between are lost. */
    onGap?: () => void;
    pollIntervalMs?: number;
  },
): Promise<RealtimeFeed> {
  return options.mode === "notify"
    ? await startNotifyFeed(sql, options.deliver, options.onGap ?? (() => {}))
    : await startPollFeed(sql, options.deliver, options.pollIntervalMs ?? 50);
}

async function startNotifyFeed(
  sql: Sql,
  deliver: (message: DatabaseBroadcast) => void,
  onGap: () => void,
): Promise<RealtimeFeed> {
  const pending: string[] = [];
  let draining: Promise<void> | null = null;
  let closed = false;

  async function drain() {
    while (pending.length > 0 && !closed) {
      const ids = pending.splice(0, 500);
      try {
        const rows = await sql<(DatabaseBroadcast & { id: string })[]>`
          select id::text, topic, event, coalesce(private, false) as private, payload::text as payload
          from realtime.messages where id = any(${ids}::uuid[])`;
        const byId = new Map(rows.map((row) => [row.id, row]));
        for (const id of ids) {
          const row = byId.get(id);
          if (row) deliver(row);
        }
      } catch (error) {
        if (!closed) console.error(`Realtime stand-in: cannot read broadcasts: ${(error as Error).message}`);
      }
    }
    draining = null;
  }

  // postgres.js listens again by itself when its connection drops; what was committed meanwhile was not notified.
  let listens = 0;
  const listener = await sql.listen("realtime_stand_in", (id) => {
    pending.push(id);
    draining ??= drain();
  }, () => {
    if (++listens > 1 && !closed) onGap();
  });
  return {
    async close() {
      closed = true;
      await listener.unlisten();
      await draining;
    },
  };
}

async function startPollFeed(
  sql: Sql,
  deliver: (message: DatabaseBroadcast) => void,
  intervalMs: number,
): Promise<RealtimeFeed> {
  const [start] = await sql`select coalesce(max(inserted_at), 'epoch'::timestamp)::text as at from realtime.messages`;
  let since = start!.at as string;
  // Ids already delivered whose inserted_at equals `since` (rows of one transaction share it). `since` goes to
  // PostgreSQL as text: postgres.js would turn a timestamp parameter into a Date and drop its microseconds.
  let seen = new Set(
    (await sql`select id::text from realtime.messages where inserted_at = ${since}::text::timestamp`).map((r) =>
      r.id as string
    ),
  );
  let closed = false;

  async function poll() {
    try {
      const rows = await sql<(DatabaseBroadcast & { at: string })[]>`
        select id::text, topic, event, coalesce(private, false) as private, payload::text as payload,
          inserted_at::text as at
        from realtime.messages
        where extension = 'broadcast' and inserted_at >= ${since}::text::timestamp
        order by inserted_at, ctid`;
      for (const row of rows) {
        if (seen.has(row.id)) continue;
        if (row.at !== since) {
          since = row.at;
          seen = new Set();
        }
        seen.add(row.id);
        deliver(row);
      }
    } catch (error) {
      if (!closed) console.error(`Realtime stand-in: cannot read broadcasts: ${(error as Error).message}`);
    }
  }

  let timer: ReturnType<typeof setTimeout> | undefined;
  async function loop(): Promise<void> {
    await poll();
    if (!closed) timer = setTimeout(() => running = loop(), intervalMs);
  }
  let running = loop();
  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      await running;
    },
  };
}
