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

/** The demo user, a viewer of the demo workspace: DEMO_ACCESS_TOKEN signs in as them. */
export const DEMO_USER = { id: "00000000-0000-4000-8000-00000000de30", email: "demo@twinnoverse.local" };

/** What {@linkcode seedDemo} made ready. */
export interface Demo {
  datasourceId: string;
  datasourceName: string;
  apiKey: string;
  keyReused: boolean;
  userId: string;
  userEmail: string;
}

/**
 * Creates the demo datasource if missing, and the demo user as a member of its
 * workspace, and returns its demo key: the one kept in `keyOptions.keyFile`
 * while it works, else a new one (see demo_key.ts).
 */
export async function seedDemo(sql: Sql, keyOptions: { keyFile: string; newKey?: boolean }): Promise<Demo> {
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
  await sql`insert into auth.users (id, email) values (${DEMO_USER.id}, ${DEMO_USER.email}) on conflict (id) do nothing`;
  await sql`insert into public.workspace_members (workspace_id, user_id, role)
    select workspace_id, ${DEMO_USER.id}, 'viewer' from public.datasources where id = ${datasourceId}
    on conflict (workspace_id, user_id) do nothing`;
  const { apiKey, reused } = await demoApiKey(sql, datasourceId, keyOptions);
  return {
    datasourceId,
    datasourceName: DEMO_DATASOURCE,
    apiKey,
    keyReused: reused,
    userId: DEMO_USER.id,
    userEmail: DEMO_USER.email,
  };
}
