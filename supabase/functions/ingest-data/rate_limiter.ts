/**
 * Per-key rate limiting with a token bucket held in this instance's memory.
 * Each function instance keeps its own buckets: with N instances a key may
 * reach N times its limit (see the README).
 *
 * @module
 */

/** A token bucket: `perSecond` tokens a second, at most `burst` saved up. */
export interface RateLimit {
  perSecond: number;
  burst: number;
  /** Tokens this request takes (default 1). */
  cost?: number;
}

/** The outcome of taking one token, with what the X-RateLimit-* headers say. */
export interface RateDecision {
  allowed: boolean;
  /** The bucket's size. */
  limit: number;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Seconds until the bucket is full again. */
  resetS: number;
  /** Seconds until a token is available, when refused. */
  retryAfterS: number;
}

/** Takes `cost` tokens (default 1) from `id`'s bucket, or none when there are fewer. */
export type RateLimiter = (id: string, limit: RateLimit) => RateDecision;

/** A limiter keeping at most `maxEntries` buckets (the least recently used go first). */
export function createRateLimiter(options: { now?: () => number; maxEntries?: number } = {}): RateLimiter {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 100_000;
  const buckets = new Map<string, { tokens: number; at: number }>();

  return function take(id, { perSecond, burst, cost = 1 }) {
    const t = now();
    const bucket = buckets.get(id) ?? { tokens: burst, at: t };
    buckets.delete(id);
    if (buckets.size >= maxEntries) buckets.delete(buckets.keys().next().value!);
    buckets.set(id, bucket);

    bucket.tokens = Math.min(burst, bucket.tokens + ((t - bucket.at) / 1000) * perSecond);
    bucket.at = t;
    const allowed = bucket.tokens >= cost;
    if (allowed) bucket.tokens -= cost;
    return {
      allowed,
      limit: burst,
      remaining: Math.floor(bucket.tokens),
      resetS: Math.ceil((burst - bucket.tokens) / perSecond),
      retryAfterS: allowed ? 0 : Math.ceil((cost - bucket.tokens) / perSecond),
    };
  };
}
