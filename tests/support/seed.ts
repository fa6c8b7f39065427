/**
 * Test data: users with each role, a workspace, a datasource with the
 * documentation's three widgets and an API key, and a way to act as a role.
 *
 * @module
 */
import type { Sql, TransactionSql } from "postgres";
import {
  createApiKey,
  createDatasource,
  createWorkspace,
  DOC_WIDGETS,
  type WidgetSpec,
} from "../../local/provisioning.ts";

export { DOC_WIDGETS, type WidgetSpec };

/** What {@linkcode seedWorkspace} created. */
export interface Seeded {
  workspaceId: string;
  datasourceId: string;
  owner: string;
  editor: string;
  viewer: string;
  outsider: string;
  /** A key with `ingest:write` on the datasource, in plain text. */
  apiKey: string;
  keyId: string;
}

/** Creates a workspace with an owner, editor and viewer, a user outside it, a datasource, widgets and a key. */
export async function seedWorkspace(
  sql: Sql,
  options: { widgets?: readonly WidgetSpec[]; keepHistory?: boolean; scopes?: string[] } = {},
): Promise<Seeded> {
  const [owner, editor, viewer, outsider] = await createUsers(sql, 4);
  const workspaceId = await createWorkspace(sql, "Plant");
  await sql`insert into public.workspace_members (workspace_id, user_id, role) values
    (${workspaceId}, ${owner!}, 'owner'), (${workspaceId}, ${editor!}, 'editor'), (${workspaceId}, ${viewer!}, 'viewer')`;
  const datasourceId = await createDatasource(sql, workspaceId, {
    widgets: options.widgets ?? DOC_WIDGETS,
    keepHistory: options.keepHistory,
  });
  const { apiKey, keyId } = await createKey(sql, datasourceId, { scopes: options.scopes });
  return {
    workspaceId,
    datasourceId,
    owner: owner!,
    editor: editor!,
    viewer: viewer!,
    outsider: outsider!,
    apiKey,
    keyId,
  };
}

/** Inserts `count` users into auth.users and returns their ids. */
export async function createUsers(sql: Sql, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => crypto.randomUUID());
  for (const id of ids) await sql`insert into auth.users (id, email) values (${id}, ${id + "@example.test"})`;
  return ids;
}

/** Creates an API key as the service role. */
export async function createKey(
  sql: Sql,
  datasourceId: string,
  options: { scopes?: string[]; expiresAt?: Date } = {},
): Promise<{ apiKey: string; keyId: string }> {
  const { apiKey, keyId } = await createApiKey(sql, datasourceId, { name: "test key", ...options });
  return { apiKey, keyId };
}

/** Who a query runs as: a PostgREST role, and for `authenticated` the user. */
export interface Actor {
  role: "anon" | "authenticated" | "service_role";
  userId?: string;
}

/** Runs `fn` in a transaction as `actor`, with the JWT claims PostgREST would set. */
export function asRole<T>(sql: Sql, actor: Actor, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  const claims = JSON.stringify({ role: actor.role, ...(actor.userId ? { sub: actor.userId } : {}) });
  return sql.begin(async (tx) => {
    await tx.unsafe(`set local role ${actor.role}`);
    await tx`select set_config('request.jwt.claims', ${claims}, true)`;
    return await fn(tx);
  }) as Promise<T>;
}

/** The SQLSTATE of a failed query, or "ok" when it succeeded. */
export async function sqlState(query: Promise<unknown>): Promise<string> {
  try {
    await query;
    return "ok";
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}
