/**
 * Whether a request's API key may be used: looked up through the key cache,
 * refused when unknown, revoked or expired, and looked up again when the
 * database refuses a cached key's write.
 *
 * @module
 */
import { invalidApiKey, unauthorized } from "./api_key.ts";
import type { Config } from "./config.ts";
import { HttpError } from "./http_error.ts";
import { createKeyResolver } from "./key_resolver.ts";
import type { ResolvedKey, Store, StoreError } from "./store.ts";

/** The key checks of one handler. */
export interface KeyGate {
  /** The key of `keyHash` when it may be used; throws the 401 that says why not. */
  authenticate(keyHash: string): Promise<ResolvedKey>;
  /**
   * The database refused a cached key's write (revoked, expired, deleted, or its scope or datasource changed):
   * the key is looked up again, so that this answer and every later one, GET or POST, say why.
   */
  relearn(keyHash: string, error: StoreError): Promise<unknown>;
}

/** Creates the key checks over the store's `ingest_resolve_key`, cached as the config says. */
export function createKeyGate(store: Store, config: Config, now: () => number): KeyGate {
  const resolveKey = createKeyResolver(store, {
    ttlMs: config.keyCacheTtlMs,
    negativeTtlMs: config.negativeCacheTtlMs,
    lookups: config.keyLookups,
    now,
  });

  async function authenticate(keyHash: string): Promise<ResolvedKey> {
    const key = await resolveKey(keyHash);
    const refusal = keyRefusal(key, now());
    if (refusal) throw refusal;
    return key!;
  }

  async function relearn(keyHash: string, error: StoreError): Promise<unknown> {
    let key: ResolvedKey | null;
    try {
      key = await resolveKey.refresh(keyHash);
    } catch {
      return error; // the database's refusal stands
    }
    return keyRefusal(key, now()) ?? writeRefusal(key!) ?? error;
  }

  return { authenticate, relearn };
}

/** Why the key cannot write: a read-only key, a disabled datasource; undefined when it can. */
export function writeRefusal(key: ResolvedKey): HttpError | undefined {
  if (!key.scopes.includes("ingest:write")) {
    return new HttpError(403, "insufficient_scope", "Forbidden: this API key is read-only (it lacks ingest:write)");
  }
  if (!key.enabled) return new HttpError(403, "datasource_disabled", "Forbidden: this datasource is disabled");
  return undefined;
}

/** Why the key cannot be used at all: unknown, revoked or expired; undefined when it can. */
function keyRefusal(key: ResolvedKey | null, now: number): HttpError | undefined {
  if (!key) return invalidApiKey();
  if (key.revoked) return unauthorized("revoked_api_key", "API key revoked: create a new one on the datasource card");
  if (key.expires_at && Date.parse(key.expires_at) <= now) {
    return unauthorized("expired_api_key", "API key expired: create a new one on the datasource card");
  }
  return undefined;
}
