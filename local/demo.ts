/**
 * The demo workspace of the dev server: datasource "Demo line" with the
 * documentation's three widgets, and its API key, kept across restarts.
 *
 * @module
 */
import type { Sql } from "postgres";
import { demoApiKey } from "./demo_key.ts";
import { asServiceRole, createDatasource, createWorkspace } from "./provisioning.ts";

const DEMO_DATASOURCE = "Demo line";

/**
 * Creates the demo datasource if missing, and returns its demo key: the one
 * kept in `keyOptions.keyFile` while it works, else a new one (see demo_key.ts).
 */
export async function seedDemo(
  sql: Sql,
  keyOptions: { keyFile: string; newKey?: boolean },
): Promise<{ datasourceId: string; datasourceName: string; apiKey: string; keyReused: boolean }> {
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
  const { apiKey, reused } = await demoApiKey(sql, datasourceId, keyOptions);
  return { datasourceId, datasourceName: DEMO_DATASOURCE, apiKey, keyReused: reused };
}
