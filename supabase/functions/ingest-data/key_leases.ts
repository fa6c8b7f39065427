/**
 * The leases the database lends this instance on keys with high limits.
 *
 * A call of several requests that fit their key's limits may come back with
 * `leases: {key_id: n}`: n more requests of that key, already taken from its
 * buckets in the database. This instance spends them on its next requests of
 * that key in a call of several (sent `"leased": true`), which skip the key's
 * bucket rows: the lock and update that otherwise cost each call about
 * 20 µs of PostgreSQL per key (docs/performance.md). The database's count
 * stays the authority: a lease is taken from it before it is spent, so the
 * key's rate holds across instances, and a burst passes the bucket by at most
 * the leases outstanding (one per instance, at most 1% of the burst). A lease
 * not spent (the instance retired, the lease expired, or its requests were in
 * a call that failed and went again alone, charged again) is lost.
 * A grant replaces the key's lease: write_lanes.ts keeps at most one call of a
 * datasource (so of a key) in flight, and a call only has unleased requests of
 * a key once its lease is spent.
 * Hand-written: a map of counters with an expiry, which no library does better.
 *
 * @module
 */

/** Seconds of a key's rate the database lends at once (at most 1% of its burst, from 10 requests up). */
export const KEY_LEASE_SECONDS = 0.05;

/** How long a lease may be spent after its call was sent: a key's changed limits apply within this. */
export const KEY_LEASE_TTL_MS = 5_000;

/** Keys with a lease before a grant first drops the expired and spent ones. */
const MAX_ENTRIES = 10_000;

/** This instance's leases. */
export interface KeyLeases {
  /** Spends one request of `keyId`'s lease; false when there is none left. */
  take(keyId: string): boolean;
  /** Records the leases a call sent at `sentAt` (ms) came back with; each replaces the key's previous one. */
  grant(leases: unknown, sentAt: number): void;
}

/** Creates an empty set of leases on the clock `now` (ms). */
export function createKeyLeases(options: { now?: () => number; ttlMs?: number } = {}): KeyLeases {
  const now = options.now ?? Date.now;
  const ttlMs = options.ttlMs ?? KEY_LEASE_TTL_MS;
  const leases = new Map<string, { left: number; until: number }>();

  function take(keyId: string): boolean {
    const lease = leases.get(keyId);
    if (!lease) return false;
    if (lease.until <= now() || lease.left <= 0) {
      leases.delete(keyId);
      return false;
    }
    lease.left--;
    return true;
  }

  function grant(granted: unknown, sentAt: number): void {
    if (typeof granted !== "object" || granted === null || Array.isArray(granted)) return;
    if (leases.size >= MAX_ENTRIES) dropExpired();
    for (const [keyId, n] of Object.entries(granted)) {
      if (Number.isSafeInteger(n) && n > 0) leases.set(keyId, { left: n, until: sentAt + ttlMs });
    }
  }

  function dropExpired(): void {
    const t = now();
    for (const [keyId, lease] of leases) if (lease.until <= t || lease.left <= 0) leases.delete(keyId);
  }

  return { take, grant };
}
