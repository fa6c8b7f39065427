/**
 * The in-memory token buckets in front of the database's limits: per key,
 * one for requests and one for a batch's readings. They refuse only what the
 * database would refuse too (a cheap pre-filter, per instance).
 *
 * @module
 */
import type { Config } from "./config.ts";
import { HttpError } from "./http_error.ts";
import { createRateLimiter, type RateDecision } from "./rate_limiter.ts";
import type { ResolvedKey } from "./store.ts";

/** The buckets of one handler. */
export interface RequestLimits {
  /** Takes a token from the key's request bucket; throws a 429 with Retry-After when it is empty. */
  limitRate(key: ResolvedKey): RateDecision | undefined;
  /** Takes a batch's readings from the key's readings bucket; throws a 429 with Retry-After when too few are left. */
  limitReadings(key: ResolvedKey, count: number): void;
}

/** Creates the buckets with the config's default rates (a key's own `rate_limit` overrides them). */
export function createRequestLimits(config: Config, now: () => number): RequestLimits {
  const takeToken = createRateLimiter({ now });
  const takeReadings = createRateLimiter({ now });

  function limitRate(key: ResolvedKey): RateDecision | undefined {
    const perSecond = key.rate_limit?.per_second ?? config.rateLimit.perSecond;
    if (perSecond <= 0) return undefined;
    const decision = takeToken(key.key_id, { perSecond, burst: key.rate_limit?.burst ?? config.rateLimit.burst });
    if (!decision.allowed) {
      throw new HttpError(429, "rate_limited", `Too many requests: this key may send ${perSecond} a second`, {
        headers: { "Retry-After": String(decision.retryAfterS), ...rateHeaders(decision) },
      });
    }
    return decision;
  }

  function limitReadings(key: ResolvedKey, count: number): void {
    const { perSecond, burst } = readingsLimit(key, config);
    if (perSecond <= 0 || count <= 1) return;
    const decision = takeReadings(key.key_id, { perSecond, burst, cost: count });
    if (!decision.allowed) {
      throw new HttpError(
        429,
        "rate_limited",
        `Too many readings: this key may send ${perSecond} readings a second in batches (${decision.remaining} left now)`,
        { headers: { "Retry-After": String(decision.retryAfterS), ...rateHeaders(decision) } },
      );
    }
  }

  return { limitRate, limitReadings };
}

/** The `X-RateLimit-*` headers of a bucket's decision. */
export function rateHeaders(decision: RateDecision): Record<string, string> {
  return {
    "X-RateLimit-Limit": String(decision.limit),
    "X-RateLimit-Remaining": String(decision.remaining),
    "X-RateLimit-Reset": String(decision.resetS),
  };
}

/**
 * The key's readings bucket: the default one, or, for a key with its own rate_limit, one scaled like
 * the defaults (per_second × readings/s ÷ requests/s, burst × readings burst ÷ request burst, both
 * rounded up), so that a throttled key is throttled in batches too. The burst stays at least
 * INGEST_MAX_READINGS: a full batch is refused for a while, never for good.
 */
function readingsLimit(key: ResolvedKey, config: Config): { perSecond: number; burst: number } {
  const own = key.rate_limit, readings = config.readingsRateLimit, requests = config.rateLimit;
  if (own?.per_second == null && own?.burst == null) return readings;
  // With the default request limit off (0), there is no ratio to scale by: the default readings rate.
  const perSecond = own.per_second == null || requests.perSecond <= 0
    ? readings.perSecond
    : Math.ceil((own.per_second * readings.perSecond) / requests.perSecond);
  const burst = own.burst == null ? readings.burst : Math.ceil((own.burst * readings.burst) / requests.burst);
  return { perSecond, burst: Math.max(burst, config.maxReadings) };
}
