/**
 * Key resolution with an in-memory cache: a known key is kept for a TTL, an
 * unknown one for a shorter TTL in a cache of its own (so that unknown keys
 * never evict known ones), and concurrent lookups of one key share one
 * database call. Keys this instance has never seen valid draw their lookups
 * from a token bucket: a flood of random keys costs a bounded number of
 * lookups a second. ingest_write checks the key again on every write, so the
 * cache never lets a revoked key store anything; when a write refuses a key,
 * {@linkcode KeyResolver.refresh} looks it up again.
 *
 * @module
 */
import { createRateLimiter, type RateLimit } from "./rate_limiter.ts";
import type { ResolvedKey, Store } from "./store.ts";

/** Options of {@linkcode createKeyResolver}. */
export interface KeyResolverOptions {
  ttlMs: number;
  negativeTtlMs: number;
  /** Known keys kept at most; the oldest go first. */
  maxEntries?: number;
  /** Unknown keys kept at most, apart from the known ones; the oldest go first. */
  maxUnknownEntries?: number;
  /** Lookups of keys never seen valid here: a token bucket (`perSecond` 0 turns it off). */
  lookups?: { perSecond: number; burst: number };
  /** The clock, for tests. */
  now?: () => number;
}

/** Resolves a key hash to its key and datasource, or null. */
export interface KeyResolver {
  /** The cached key, or a lookup; rejects with a {@linkcode LookupLimitedError} when the budget is spent. */
  (keyHash: string): Promise<ResolvedKey | null>;
  /** Looks the key up again whatever is cached, outside the budget: after the database refused it. */
  refresh(keyHash: string): Promise<ResolvedKey | null>;
}

/** A key this instance has not seen valid, while the budget of lookups is spent: it was not checked. */
export class LookupLimitedError extends Error {
  /** Seconds until the budget has a lookup again. */
  readonly retryAfterS: number;
  constructor(retryAfterS: number) {
    super("the budget of key lookups is spent");
    this.name = "LookupLimitedError";
    this.retryAfterS = retryAfterS;
  }
}

interface Entry<T> {
  value: T;
  expiresAt: number;
}

/** A cached resolver in front of `store.resolveKey`. */
export function createKeyResolver(store: Store, options: KeyResolverOptions): KeyResolver {
  const now = options.now ?? Date.now;
  // Known keys stay after their TTL (until evicted): such a key is looked up again outside the budget.
  const known = new Map<string, Entry<ResolvedKey>>();
  const unknown = new Map<string, Entry<null>>();
  const pending = new Map<string, Promise<ResolvedKey | null>>();
  const budget = createLookupBudget(options);

  function remember(keyHash: string, value: ResolvedKey | null): void {
    if (value) {
      unknown.delete(keyHash);
      setBounded(known, keyHash, { value, expiresAt: now() + options.ttlMs }, options.maxEntries ?? 10_000);
    } else {
      known.delete(keyHash);
      if (options.negativeTtlMs <= 0) return;
      const entry = { value: null, expiresAt: now() + options.negativeTtlMs };
      setBounded(unknown, keyHash, entry, options.maxUnknownEntries ?? 10_000);
    }
  }

  function lookUp(keyHash: string): Promise<ResolvedKey | null> {
    const lookup = store.resolveKey(keyHash).then((value) => {
      remember(keyHash, value);
      return value;
    }).finally(() => {
      if (pending.get(keyHash) === lookup) pending.delete(keyHash);
    });
    pending.set(keyHash, lookup);
    return lookup;
  }

  function resolve(keyHash: string): Promise<ResolvedKey | null> {
    const hit = known.get(keyHash);
    if (hit && hit.expiresAt > now()) return Promise.resolve(hit.value);
    const miss = unknown.get(keyHash);
    if (miss && miss.expiresAt > now()) return Promise.resolve(null);
    const inFlight = pending.get(keyHash);
    if (inFlight) return inFlight;
    const refused = hit ? undefined : budget.take();
    return refused ? Promise.reject(refused) : lookUp(keyHash);
  }

  return Object.assign(resolve, { refresh: lookUp });
}

/** The token bucket of lookups for keys never seen valid; `take` returns the error when it is empty. */
function createLookupBudget(options: KeyResolverOptions): { take(): LookupLimitedError | undefined } {
  const limit: RateLimit | undefined = options.lookups && options.lookups.perSecond > 0 ? options.lookups : undefined;
  const take = createRateLimiter({ now: options.now, maxEntries: 1 });
  return {
    take() {
      if (!limit) return undefined;
      const decision = take("lookups", limit);
      return decision.allowed ? undefined : new LookupLimitedError(decision.retryAfterS);
    },
  };
}

/** Sets `key` last in `map`, first dropping the oldest entry when `map` is full. */
function setBounded<T>(map: Map<string, T>, key: string, value: T, maxEntries: number): void {
  map.delete(key);
  if (map.size >= maxEntries) map.delete(map.keys().next().value!);
  map.set(key, value);
}
