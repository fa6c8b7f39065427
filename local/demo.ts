/**
 * The demo workspace of the dev server: datasource "Demo line" with the
 * documentation's three widgets, and a fresh API key at every start.
 *
 * @module
 */
import type { Sql } from "postgres";
import { asServiceRole, createApiKey, createDatasource, createWorkspace, revokeApiKey } from "./provisioning.ts";

const DEMO_DATASOURCE = "Demo line";
const DEMO_KEY = "dev server";

/** Creates the demo datasource if missing, revokes earlier demo keys, and returns a new key. */
export async function seedDemo(sql: Sql): Promise<{ datasourceId: string; datasourceName: string; apiKey: string }> {
  let [existing] =
    await sql`select id from public.datasources where name = ${DEMO_DATASOURCE} order by created_at limit 1`;
  if (!existing) {
    const id = await asServiceRole(
      sql,
      async (tx) => createDatasource(tx, await createWorkspace(tx, "Demo"), { name: DEMO_DATASOURCE }),
    );
    existing = { id };
  }
  const datasourceId = existing.id as string;
  const old = await sql`select id from public.datasource_api_keys
    where datasource_id = ${datasourceId} and name = ${DEMO_KEY} and revoked_at is null`;
  for (const key of old) await revokeApiKey(sql, key.id);
  const { apiKey } = await createApiKey(sql, datasourceId, { name: DEMO_KEY, scopes: ["ingest:write", "ingest:read"] });
  return { datasourceId, datasourceName: DEMO_DATASOURCE, apiKey };
}
