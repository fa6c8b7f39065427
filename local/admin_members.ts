/**
 * Workspaces, their members and the local users of `auth.users`, for
 * `deno task admin`: who may see a datasource in the twin view (and with
 * supabase-js) is decided by workspace membership alone.
 *
 * @module
 */
import type { Sql, TransactionSql } from "postgres";
import { DEMO_USER } from "./demo.ts";
import { asServiceRole, createWorkspace } from "./provisioning.ts";

/** The roles of a workspace member: owners manage members, editors datasources, viewers read. */
export const ROLES = ["owner", "editor", "viewer"] as const;
/** One of {@linkcode ROLES}. */
export type Role = typeof ROLES[number];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EMAIL = /^[^@\s]+@[^@\s]+$/;

/** `value` when it is a UUID, else an error saying which id was expected. */
export function requireId(value: string | undefined, what: string, action: string): string {
  if (!value || value.startsWith("--")) throw new Error(`${action} needs <${what}-id>`);
  if (!UUID.test(value)) throw new Error(`${action}: "${value}" is not a ${what} id (a UUID)`);
  return value;
}

/** `value` when it is a role, else an error naming the roles. */
export function requireRole(value: string | undefined, action: string): Role {
  if ((ROLES as readonly string[]).includes(value ?? "")) return value as Role;
  throw new Error(`${action}: the role must be ${ROLES.join(", ")} (not "${value ?? ""}")`);
}

/** Every workspace with its counts of members and datasources. */
export function listWorkspaces(sql: Sql) {
  return sql`select w.id, w.name,
      (select count(*)::int from public.workspace_members m where m.workspace_id = w.id) as members,
      (select count(*)::int from public.datasources d where d.workspace_id = w.id) as datasources
    from public.workspaces w order by w.created_at`;
}

/** Creates a workspace (without members) and returns its id. */
export function addWorkspace(sql: Sql, name: string): Promise<string> {
  return asServiceRole(sql, (tx) => createWorkspace(tx, name));
}

/** The workspace a new datasource goes to: `requested`, else the dev server's demo workspace. */
export async function targetWorkspace(
  sql: Sql | TransactionSql,
  requested: string | undefined,
): Promise<{ id: string; name: string }> {
  if (requested !== undefined) {
    const id = requireId(requested, "workspace", "Cannot create datasource: --workspace");
    return await workspace(sql, id, "Cannot create datasource");
  }
  const [demo] = await sql`select w.id, w.name from public.workspace_members m
    join public.workspaces w on w.id = m.workspace_id
    where m.user_id = ${DEMO_USER.id} order by m.created_at limit 1`;
  if (!demo) {
    throw new Error(
      "Cannot create datasource: there is no demo workspace (deno task dev creates it): " +
        "pass --workspace <workspace-id> (deno task admin workspaces lists them)",
    );
  }
  return { id: demo.id, name: demo.name };
}

/** A workspace's members with their emails and roles, owners first. */
export async function listMembers(sql: Sql, workspaceId: string) {
  await workspace(sql, workspaceId, "Cannot list members");
  return await sql`select u.email, m.role, m.user_id, m.created_at as added_at
    from public.workspace_members m join auth.users u on u.id = m.user_id
    where m.workspace_id = ${workspaceId}
    order by array_position(array['owner', 'editor', 'viewer'], m.role), u.email`;
}

/** Adds the user with `email` to a workspace as `role`; a member already there is an error. */
export async function addMember(sql: Sql, workspaceId: string, email: string, role: Role): Promise<string> {
  const action = "Cannot add member";
  const ws = await workspace(sql, workspaceId, action);
  const userId = await userByEmail(sql, email, action);
  const [existing] = await sql`select role from public.workspace_members
    where workspace_id = ${workspaceId} and user_id = ${userId}`;
  if (existing) {
    throw new Error(`${action}: ${email} is already ${existing.role} of "${ws.name}": use members set-role`);
  }
  await asServiceRole(sql, (tx) =>
    tx`insert into public.workspace_members (workspace_id, user_id, role)
      values (${workspaceId}, ${userId}, ${role})`);
  return `Added ${email} as ${role} of workspace "${ws.name}"`;
}

/** Changes a member's role; the last owner cannot be demoted (the database refuses). */
export async function setMemberRole(sql: Sql, workspaceId: string, email: string, role: Role): Promise<string> {
  const target = { workspaceId, email, action: "Cannot change role", missing: ": use members add" };
  const ws = await changeMember(sql, target, (tx, userId) =>
    tx`update public.workspace_members set role = ${role}
      where workspace_id = ${workspaceId} and user_id = ${userId} returning role`);
  return `${email} is now ${role} of workspace "${ws.name}"`;
}

/** Removes a member; the last owner cannot be removed (the database refuses). */
export async function removeMember(sql: Sql, workspaceId: string, email: string): Promise<string> {
  const target = { workspaceId, email, action: "Cannot remove member", missing: "" };
  const ws = await changeMember(sql, target, (tx, userId) =>
    tx`delete from public.workspace_members
      where workspace_id = ${workspaceId} and user_id = ${userId} returning role`);
  return `Removed ${email} from workspace "${ws.name}"`;
}

/**
 * Runs `change` on the membership of the user with `email` as the service
 * role; the database's refusal (the last owner) and a missing member are
 * errors worded as `action: why`.
 */
async function changeMember(
  sql: Sql,
  target: { workspaceId: string; email: string; action: string; missing: string },
  change: (tx: TransactionSql, userId: string) => Promise<readonly unknown[]>,
): Promise<{ id: string; name: string }> {
  const { workspaceId, email, action } = target;
  const ws = await workspace(sql, workspaceId, action);
  const userId = await userByEmail(sql, email, action);
  const rows = await asServiceRole(sql, async (tx) => {
    try {
      return await change(tx, userId);
    } catch (error) {
      // A trigger's check_violation (keep_an_owner) says why in words.
      if ((error as { code?: string }).code === "23514") throw new Error(`${action}: ${(error as Error).message}`);
      throw error;
    }
  });
  if (rows.length === 0) throw new Error(`${action}: ${email} is not a member of "${ws.name}"${target.missing}`);
  return ws;
}

/** The users of `auth.users` with the workspaces they belong to. */
export function listUsers(sql: Sql) {
  return sql`select u.id, u.email,
      coalesce(string_agg(w.name || ' (' || m.role || ')', ', ' order by w.name), '') as workspaces
    from auth.users u
    left join public.workspace_members m on m.user_id = u.id
    left join public.workspaces w on w.id = m.workspace_id
    group by u.id, u.email, u.created_at order by u.created_at`;
}

/** Creates a local user in `auth.users` (no password: sign in with `deno task admin token <id>`); returns the id. */
export async function createUser(sql: Sql, email: string): Promise<string> {
  const action = "Cannot create user";
  if (!EMAIL.test(email)) throw new Error(`${action}: "${email}" is not an email address`);
  const [taken] = await sql`select id from auth.users where lower(email) = lower(${email}) limit 1`;
  if (taken) throw new Error(`${action}: ${email} already exists (user ${taken.id})`);
  const [user] = await sql`insert into auth.users (id, email) values (gen_random_uuid(), ${email}) returning id`;
  return user!.id as string;
}

async function workspace(sql: Sql | TransactionSql, id: string, action: string): Promise<{ id: string; name: string }> {
  const [found] = await sql`select id, name from public.workspaces where id = ${id}`;
  if (!found) throw new Error(`${action}: no workspace ${id} (deno task admin workspaces lists them)`);
  return { id: found.id, name: found.name };
}

async function userByEmail(sql: Sql, email: string, action: string): Promise<string> {
  const users = await sql`select id from auth.users where lower(email) = lower(${email})`;
  if (users.length === 0) {
    throw new Error(`${action}: no user ${email} in auth.users (create one: deno task admin users create ${email})`);
  }
  if (users.length > 1) throw new Error(`${action}: ${users.length} users have the email ${email}`);
  return users[0]!.id as string;
}
