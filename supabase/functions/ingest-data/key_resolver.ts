/**
 * Key resolution with an in-memory cache: a known key is kept for a TTL, an
 * unknown one for a shorter TTL, and concurrent lookups of one key share one
 * database call. ingest_write checks the key again on every write, so the
 * cache never lets a revoked key store anything; it only delays, by at most
 * the TTL, when GET and payload validation see a change.
 *
 * @module
 */
import type { ResolvedKey, Store } from "./store.ts";

/** Options of {@linkcode createKeyResolver}. */
export interface KeyResolverOptions {
  ttlMs: number;
  negativeTtlMs: number;
  /** Entries kept at most; the oldest go first. */
  maxEntries?: number;
  /** The clock, for tests. */
  now?: () => number;
}

/** Resolves a key hash to its key and datasource, or null. */
export type KeyResolver = (keyHash: string) => Promise<ResolvedKey | null>;

/** A cached resolver in front of `store.resolveKey`. */
export function createKeyResolver(store: Store, options: KeyResolverOptions): KeyResolver {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 10_000;
  const cache = new Map<string, { value: ResolvedKey | null; expiresAt: number }>();
  const pending = new Map<string, Promise<ResolvedKey | null>>();

  return function resolve(keyHash) {
    const hit = cache.get(keyHash);
    if (hit && hit.expiresAt > now()) return Promise.resolve(hit.value);
    const inFlight = pending.get(keyHash);
    if (inFlight) return inFlight;

    const lookup = store.resolveKey(keyHash).then((value) => {
      const ttl = value ? options.ttlMs : options.negativeTtlMs;
      if (ttl > 0) {
        cache.delete(keyHash);
        if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
        cache.set(keyHash, { value, expiresAt: now() + ttl });
      }
      return value;
    }).finally(() => pending.delete(keyHash));
    pending.set(keyHash, lookup);
    return lookup;
  };
}
