/**
 * The trailing edge of the broadcast budget, from the instance that wrote:
 * after a commit, a flush of the pending broadcasts that are due, then
 * another when the next one is due, until none is pending (docs/realtime.md,
 * "The broadcast budget"). A commit whose broadcast the budget held back is
 * thus sent within its datasource's interval even if no write follows. The
 * database's own job (pg_cron) is the backstop when this instance is gone.
 *
 * Written by hand: it is one timer chain, which no scheduler library makes
 * shorter.
 *
 * @module
 */
import type { Store } from "./store.ts";

/** Options of {@linkcode withBroadcastFlush}. */
export interface BroadcastFlushOptions {
  /** The first flush after a commit, in ms (default 50: the budget's intervals are 20 ms and longer). */
  delayMs?: number;
  /** The next attempt after a failed flush, in ms (default 1,000). */
  retryMs?: number;
  /** Keeps the runtime alive for a promise (Supabase's `EdgeRuntime.waitUntil`; default: that, when present). */
  waitUntil?: (promise: Promise<unknown>) => void;
  /** Where a failed flush is reported (default console.error, without the error's details). */
  onError?: (error: unknown) => void;
}

interface EdgeRuntimeGlobal {
  EdgeRuntime?: { waitUntil(promise: Promise<unknown>): void };
}

/** `store` whose writes are followed by flushes of the pending broadcasts, until none is pending. */
export function withBroadcastFlush(store: Store, options: BroadcastFlushOptions = {}): Store {
  const delayMs = options.delayMs ?? 50;
  const retryMs = options.retryMs ?? 1_000;
  const edgeRuntime = (globalThis as EdgeRuntimeGlobal).EdgeRuntime;
  const waitUntil = options.waitUntil ?? edgeRuntime?.waitUntil.bind(edgeRuntime);
  const onError = options.onError ?? (() => console.error("ingest-data: flushing the pending broadcasts failed"));
  let timer: ReturnType<typeof setTimeout> | undefined;
  let dueAt = Infinity;
  let running: Promise<void> | undefined;
  let chainEnd: (() => void) | undefined;
  let closed = false;

  function schedule(inMs: number): void {
    if (closed || Date.now() + inMs >= dueAt) return;
    if (timer === undefined && chainEnd === undefined) {
      // One promise per chain of flushes, so that the runtime waits for the chain's end.
      waitUntil?.(new Promise<void>((resolve) => chainEnd = resolve));
    }
    clearTimeout(timer);
    dueAt = Date.now() + inMs;
    timer = setTimeout(run, inMs);
  }

  function run(): void {
    timer = undefined;
    dueAt = Infinity;
    running = flushOnce().finally(() => running = undefined);
  }

  async function flushOnce(): Promise<void> {
    let next: number | null;
    try {
      next = await store.flushBroadcasts();
    } catch (error) {
      onError(error);
      next = retryMs / 1000;
    }
    if (next === null || closed) return endChain();
    schedule(Math.max(next * 1000, 10));
  }

  function endChain(): void {
    if (timer !== undefined) return;
    chainEnd?.();
    chainEnd = undefined;
  }

  return {
    ...store,
    async write(request) {
      const result = await store.write(request);
      schedule(delayMs);
      return result;
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      await running;
      endChain();
      await store.close();
    },
  };
}
