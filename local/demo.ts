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

/** The demo user, a viewer of the demo workspace: DEMO_ACCESS_TOKEN signs in as them. */
export const DEMO_USER = { id: "00000000-0000-4000-8000-00000000de30", email: "demo@twinnoverse.local" };

/** What {@linkcode seedDemo} made ready. */
export interface Demo {
  datasourceId: string;
  datasourceName: string;
  apiKey: string;
  userId: string;
  userEmail: string;
}

/**
 * Creates the demo datasource if missing, and the demo user as a member of its
 * workspace; revokes earlier demo keys, and returns a new key.
 */
export async function seedDemo(sql: Sql): Promise<Demo> {
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
  await sql`insert into auth.users (id, email) values (${DEMO_USER.id}, ${DEMO_USER.email}) on conflict (id) do nothing`;
  await sql`insert into public.workspace_members (workspace_id, user_id, role)
    select workspace_id, ${DEMO_USER.id}, 'viewer' from public.datasources where id = ${datasourceId}
    on conflict (workspace_id, user_id) do nothing`;
  const { apiKey } = await createApiKey(sql, datasourceId, { name: DEMO_KEY, scopes: ["ingest:write", "ingest:read"] });
  return { datasourceId, datasourceName: DEMO_DATASOURCE, apiKey, userId: DEMO_USER.id, userEmail: DEMO_USER.email };
}
