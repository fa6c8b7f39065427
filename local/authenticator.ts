/**
 * The connection on which the stand-ins serve clients' requests, as PostgREST
 * and Supabase Realtime do: as a login role that can only become `anon`,
 * `authenticated` or `service_role` (PostgREST's `authenticator`, `noinherit`,
 * created by the platform fixture as Supabase has it). A token's `role` claim
 * goes to `set_config('role', …, true)`; PostgreSQL itself refuses any role the
 * authenticator was not granted (42501 `permission denied to set role "postgres"`)
 * and a role that does not exist (22023 `role "x" does not exist`).
 *
 * Two ways to be the authenticator:
 * - `login` (PostgreSQL): the pool logs in as that role.
 * - `session_authorization` (PGlite): pglite-socket serves every socket
 *   connection from one backend session of PGlite's superuser, whatever user
 *   the client names, and runs one transaction at a time. So each transaction
 *   starts with `set session authorization authenticator` (from there on it has
 *   the authenticator's rights and memberships only), runs the work in a
 *   savepoint (rolled back when it fails), switches back with
 *   `set session authorization <the superuser>` and commits. PGlite 0.5 does
 *   not undo `set local session authorization` at the end of a transaction,
 *   `reset session authorization` does nothing, and a ROLLBACK can leave the
 *   session as the authenticator (all checked), so the switch back is explicit
 *   and the outer transaction always commits (see docs/security.md).
 *
 * @module
 */
import postgres, { type Sql, type TransactionSql } from "postgres";

/** PostgREST's login role, as the platform fixture creates it. */
export const AUTHENTICATOR = "authenticator";

/** How the stand-ins' client pool is the authenticator. */
export type AuthenticatorLogin =
  | { kind: "login"; user: string; password?: string }
  | { kind: "session_authorization"; role: string };

/** A pool whose transactions run as the authenticator. */
export interface Authenticator {
  /** Runs `fn` in a transaction as the authenticator (before any role switch). */
  begin<T>(fn: (tx: TransactionSql) => Promise<T>): Promise<T>;
  end(): Promise<void>;
}

/** Opens the client pool on `databaseUrl` (a superuser URL: its host and database are used) as `login`. */
export function connectAuthenticator(
  databaseUrl: string,
  login: AuthenticatorLogin,
  options: { max?: number } = {},
): Authenticator {
  const credentials = login.kind === "login" ? { username: login.user, password: login.password } : {};
  const sql: Sql = postgres(databaseUrl, { max: options.max ?? 4, onnotice: () => {}, ...credentials });
  return {
    async begin<T>(fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
      if (login.kind === "login") return await sql.begin(fn) as T;
      const outcome = await sql.begin(async (tx) => {
        const [{ user }] = await tx`select session_user as user` as unknown as [{ user: string }];
        await tx.unsafe(`set session authorization ${identifier(login.role)}`);
        try {
          return { ok: true, value: await tx.savepoint(fn) as T } as const;
        } catch (error) {
          return { ok: false, error } as const; // the savepoint is rolled back: nothing of `fn` stays
        } finally {
          await tx.unsafe(`set session authorization ${identifier(user)}`);
        }
      });
      if (!outcome.ok) throw outcome.error;
      return outcome.value;
    },
    async end() {
      await sql.end({ timeout: 1 });
    },
  };
}

/**
 * Becomes `role` for the rest of the transaction and sets `settings` locally,
 * in one statement, as PostgREST and Realtime do (`set_config(name, value, true)`).
 */
export async function becomeRole(tx: TransactionSql, role: string, settings: Record<string, string> = {}) {
  const names = ["role", ...Object.keys(settings)];
  const values = [role, ...Object.values(settings)];
  const calls = names.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`).join(", ");
  await tx.unsafe(`select ${calls}`, names.flatMap((name, i) => [name, values[i]!]));
}

/**
 * Creates (or updates) the login role the dev server's stand-ins use on a
 * DATABASE_URL of your own: `loginRole`, `noinherit`, granted only the three
 * API roles, with a new random password (kept in memory, never printed).
 * It is not Supabase's `authenticator`, whose password a shared database's
 * own PostgREST needs.
 */
export async function prepareLogin(sql: Sql, loginRole: string): Promise<AuthenticatorLogin> {
  const password = crypto.randomUUID() + crypto.randomUUID();
  const [existing] = await sql`select 1 from pg_roles where rolname = ${loginRole}`;
  const verb = existing ? "alter" : "create";
  await sql.unsafe(
    `${verb} role ${identifier(loginRole)} login noinherit nosuperuser nocreatedb nocreaterole password ${
      literal(password)
    }`,
  );
  await sql.unsafe(`grant anon, authenticated, service_role to ${identifier(loginRole)}`);
  return { kind: "login", user: loginRole, password };
}

/** `text` as an SQL identifier. */
export function identifier(text: string): string {
  return `"${text.replaceAll('"', '""')}"`;
}

/** `text` as an SQL string literal. */
export function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}
