/**
 * The dev server's demo API key, kept across restarts: the plaintext key
 * lives in a gitignored file (mode 0600) beside the dev database, and is
 * reused while the database still holds it, unrevoked and unexpired.
 *
 * @module
 */
import type { Sql } from "postgres";
import { hashApiKey } from "../supabase/functions/ingest-data/api_key.ts";
import { createApiKey, revokeApiKey } from "./provisioning.ts";

const DEMO_KEY_NAME = "dev server";

/**
 * Returns the demo key of `datasourceId`: the one saved in `keyFile` when it
 * still works, else a new one (earlier demo keys revoked) saved there.
 * `newKey` forces a new one.
 */
export async function demoApiKey(
  sql: Sql,
  datasourceId: string,
  options: { keyFile: string; newKey?: boolean },
): Promise<{ apiKey: string; reused: boolean }> {
  if (!options.newKey) {
    const saved = (await Deno.readTextFile(options.keyFile).catch(() => "")).trim();
    if (/^tw_[0-9a-f]{64}$/.test(saved)) {
      const [usable] = await sql`select 1 from public.datasource_api_keys
        where key_hash = ${hashApiKey(saved)} and datasource_id = ${datasourceId} and revoked_at is null
          and (expires_at is null or expires_at > now())`;
      if (usable) return { apiKey: saved, reused: true };
    }
  }
  const old = await sql`select id from public.datasource_api_keys
    where datasource_id = ${datasourceId} and name = ${DEMO_KEY_NAME} and revoked_at is null`;
  for (const key of old) await revokeApiKey(sql, key.id);
  const { apiKey } = await createApiKey(sql, datasourceId, {
    name: DEMO_KEY_NAME,
    scopes: ["ingest:write", "ingest:read"],
  });
  await Deno.writeTextFile(options.keyFile, apiKey + "\n", { mode: 0o600 });
  await Deno.chmod(options.keyFile, 0o600); // mode applies only when the file is created
  return { apiKey, reused: false };
}
