/**
 * `deno task admin <command>`: manage datasources, widgets and API keys
 * without the dashboard, on DATABASE_URL or the running dev server's database.
 */
import postgres from "postgres";
import { addWidget, asServiceRole, createApiKey, createDatasource, revokeApiKey } from "./provisioning.ts";
import { jwtSecret, mintUserToken } from "./jwt.ts";
import {
  addMember,
  addWorkspace,
  createUser,
  listMembers,
  listUsers,
  listWorkspaces,
  removeMember,
  requireId,
  requireRole,
  setMemberRole,
  targetWorkspace,
} from "./admin_members.ts";
import { DEMO_USER } from "./demo.ts";

const USAGE = `Usage: deno task admin <command>

  workspaces                                    list workspaces (their ids, members, datasources)
  create-workspace <name>
  members <workspace-id>                        list a workspace's members
  members add <workspace-id> <email> [--role viewer|editor|owner]
  members set-role <workspace-id> <email> <owner|editor|viewer>
  members remove <workspace-id> <email>
  users                                         list the users of auth.users
  users create <email>                          a local user, to sign in as with: token <user-id>
  datasources                                   list datasources
  create-datasource <name> [--workspace <workspace-id>] [--no-history] [--doc-widgets]
                                                in the demo workspace (deno task dev's; its members see
                                                it in the twin view) unless --workspace names another
  add-widget <datasource-id> <SingleData|DoubleData|BarChart|LineChart> <data-key> [setting=value ...]
                                                e.g. add-widget <id> DoubleData motor_stats primarySubKey=rpm secondarySubKey=vibration
  widgets <datasource-id>                       list a datasource's widgets
  create-key <datasource-id> [--name <name>] [--scopes ingest:write,ingest:read] [--expires <ISO date>]
  keys <datasource-id>                          list keys (never their secrets)
  revoke-key <key-id>
  token <user-id> [--expires-in <seconds>]      an access token for a user (HS256, SUPABASE_JWT_SECRET or the
                                                Supabase CLI's local secret), for supabase-js' accessToken

Database: DATABASE_URL, else the dev server's embedded database (start it with deno task dev).`;

const WIDGET_SETTINGS: Record<string, readonly string[]> = {
  SingleData: [],
  DoubleData: ["primarySubKey", "secondarySubKey"],
  BarChart: ["labelsKey", "valuesKey"],
  LineChart: ["labelsKey", "valuesKey"],
};
const KEY_NAME_RULE = "a letter, then up to 63 letters, digits, _ or -";

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function databaseUrl(): Promise<string> {
  const url = Deno.env.get("DATABASE_URL");
  if (url) return url;
  try {
    return (await Deno.readTextFile(new URL("../.dev-db/database_url", import.meta.url))).trim();
  } catch {
    throw new Error("No database: set DATABASE_URL, or start the dev server (deno task dev) in another terminal");
  }
}

async function main(args: string[]): Promise<void> {
  const [command, ...rest] = args;
  if (!command || command === "help" || command === "--help") {
    console.log(USAGE);
    return;
  }
  const sql = postgres(await databaseUrl(), { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    switch (command) {
      case "datasources":
        console.table(
          await sql`select d.id, d.name, w.name as workspace, d.enabled, d.keep_history, d.last_ingested_at
            from public.datasources d join public.workspaces w on w.id = d.workspace_id order by d.created_at`,
        );
        break;
      case "workspaces":
        console.table(await listWorkspaces(sql));
        break;
      case "create-workspace": {
        const name = rest[0];
        if (!name || name.startsWith("--")) throw new Error("create-workspace needs a name");
        const id = await addWorkspace(sql, name);
        console.log(`Created workspace ${name}: ${id}\nAdd members: deno task admin members add ${id} <email>`);
        break;
      }
      case "members":
        await members(sql, rest);
        break;
      case "users":
        await users(sql, rest);
        break;
      case "create-datasource":
        console.log(await newDatasource(sql, rest));
        break;
      case "add-widget":
        console.log(await newWidget(sql, rest));
        break;
      case "widgets":
        console.table(
          await sql`select id, name, widget_type, data_key, settings from public.widgets where datasource_id = ${
            requireId(rest[0], "datasource", "widgets")
          } order by data_key`,
        );
        break;
      case "create-key": {
        const [datasourceId] = rest;
        if (!datasourceId) throw new Error("create-key needs <datasource-id>");
        const expires = option(rest, "--expires");
        const key = await createApiKey(sql, datasourceId, {
          name: option(rest, "--name") ?? "admin",
          scopes: option(rest, "--scopes")?.split(","),
          expiresAt: expires ? new Date(expires) : undefined,
        });
        console.log(`Key ${key.keyId} created. Copy it now, it is not shown again:\n${key.apiKey}`);
        break;
      }
      case "keys":
        console.table(
          await sql`select id, name, prefix, scopes, created_at, expires_at, revoked_at, last_used_at
            from public.datasource_api_keys where datasource_id = ${
            requireId(rest[0], "datasource", "keys")
          } order by created_at`,
        );
        break;
      case "token": {
        const [userId] = rest;
        if (!userId || userId.startsWith("--")) throw new Error("token needs <user-id>");
        const [user] = await sql`select id, email from auth.users where id::text = ${userId}`;
        if (!user) throw new Error(`No user ${userId} in auth.users`);
        const expiresIn = Number(option(rest, "--expires-in") ?? 3600);
        if (!Number.isInteger(expiresIn) || expiresIn <= 0) throw new Error("--expires-in must be a positive integer");
        console.log(await mintUserToken(jwtSecret(), user.id, { expiresIn, email: user.email ?? undefined }));
        break;
      }
      case "revoke-key":
        console.log(`Revoked at ${(await revokeApiKey(sql, requireId(rest[0], "key", "revoke-key"))).toISOString()}`);
        break;
      default:
        throw new Error(`Unknown command "${command}"\n\n${USAGE}`);
    }
  } finally {
    await sql.end();
  }
}

/** `members <workspace-id>`, `members add|set-role|remove <workspace-id> <email> ...`. */
async function members(sql: postgres.Sql, args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub !== "add" && sub !== "set-role" && sub !== "remove") {
    console.table(await listMembers(sql, requireId(sub, "workspace", "members")));
    return;
  }
  const workspaceId = requireId(rest[0], "workspace", `members ${sub}`);
  const email = rest[1];
  if (!email || email.startsWith("--")) throw new Error(`members ${sub} needs <workspace-id> <email>`);
  if (sub === "add") {
    const role = requireRole(option(rest, "--role") ?? "viewer", "Cannot add member");
    console.log(await addMember(sql, workspaceId, email, role));
  } else if (sub === "set-role") {
    console.log(await setMemberRole(sql, workspaceId, email, requireRole(rest[2], "Cannot change role")));
  } else {
    console.log(await removeMember(sql, workspaceId, email));
  }
}

/** `users`, `users create <email>`. */
async function users(sql: postgres.Sql, args: string[]): Promise<void> {
  const [sub, email] = args;
  if (sub === undefined) {
    console.table(await listUsers(sql));
    return;
  }
  if (sub !== "create") throw new Error(`Unknown users command "${sub}": users, or users create <email>`);
  if (!email) throw new Error("users create needs <email>");
  const id = await createUser(sql, email);
  console.log(`Created user ${email}: ${id}\nAn access token for them: deno task admin token ${id}`);
}

/** `create-datasource <name> [--workspace <id>] ...`: in the demo workspace unless told otherwise. */
async function newDatasource(sql: postgres.Sql, args: string[]): Promise<string> {
  const name = args[0];
  if (!name || name.startsWith("--")) throw new Error("create-datasource needs a name");
  const { id, workspace } = await asServiceRole(sql, async (tx) => {
    const workspace = await targetWorkspace(tx, option(args, "--workspace"));
    const id = await createDatasource(tx, workspace.id, {
      name,
      keepHistory: !args.includes("--no-history"),
      widgets: args.includes("--doc-widgets") ? undefined : [],
    });
    return { id, workspace };
  });
  const [demo] = await sql`select 1 from public.workspace_members
    where workspace_id = ${workspace.id} and user_id = ${DEMO_USER.id}`;
  const shown = demo
    ? `the twin view shows it (?datasource=${id})`
    : `to see it in the twin view: deno task admin members add ${workspace.id} ${DEMO_USER.email}`;
  return `Created datasource ${name} in workspace "${workspace.name}": ${id}\n${shown}`;
}

/** `add-widget <datasource-id> <type> <data-key> [setting=value ...]`, refused in words that say what to send. */
async function newWidget(sql: postgres.Sql, args: string[]): Promise<string> {
  const [datasourceId, type, dataKey, ...settingArgs] = args;
  if (!datasourceId || !type || !dataKey) throw new Error("add-widget needs <datasource-id> <type> <data-key>");
  requireId(datasourceId, "datasource", "Cannot add widget");
  const settings = widgetSettings(type, settingArgs);
  const widget = { name: dataKey, widget_type: type, data_key: dataKey, settings };
  try {
    const id = await asServiceRole(sql, (tx) => addWidget(tx, datasourceId, widget));
    return `Linked ${type} widget on "${dataKey}": ${id}`;
  } catch (error) {
    throw widgetError(error, widget, datasourceId);
  }
}

/** `name=value` arguments as settings; a setting the type does not read is refused (a typo, most likely). */
function widgetSettings(type: string, args: string[]): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const arg of args) {
    const at = arg.indexOf("=");
    if (at < 1) throw new Error(`Cannot add widget: "${arg}" is not a setting=value (e.g. primarySubKey=rpm)`);
    settings[arg.slice(0, at)] = arg.slice(at + 1);
  }
  const known = WIDGET_SETTINGS[type];
  const unknown = Object.keys(settings).find((name) => known && !known.includes(name));
  if (known && unknown) throw new Error(`Cannot add widget: ${type} has no setting ${unknown}; ${needs(type)}`);
  return settings;
}

/** What `type` needs, in words: "DoubleData needs settings primarySubKey and secondarySubKey". */
function needs(type: string): string {
  const settings = WIDGET_SETTINGS[type] ?? [];
  return settings.length === 0 ? `${type} takes no settings` : `${type} needs settings ${settings.join(" and ")}`;
}

/**
 * The database's refusal of a widget (a check constraint, the shared-DataKey
 * trigger, a missing datasource) as what to change, never a constraint name.
 */
function widgetError(error: unknown, widget: { widget_type: string; data_key: string }, datasourceId: string): Error {
  const { code, constraint_name: constraint, message } = error as {
    code?: string;
    constraint_name?: string;
    message?: string;
  };
  const type = widget.widget_type;
  const known = type in WIDGET_SETTINGS;
  // An unknown type also fails the settings check (its settings fit no type): name the types, not settings.
  const reason = constraint === "widgets_widget_type_check" || (constraint === "widgets_settings_fit_type" && !known)
    ? `unknown widget type "${type}"; the types are ${Object.keys(WIDGET_SETTINGS).join(", ")}`
    : constraint === "widgets_settings_fit_type"
    ? `${needs(type)}: two different names, each ${KEY_NAME_RULE} (e.g. ${example(type)})`
    : constraint === "widgets_data_key_valid"
    ? `the DataKey "${widget.data_key}" must be ${KEY_NAME_RULE}`
    : constraint === "widgets_datasource_id_fkey"
    ? `no datasource ${datasourceId} (deno task admin datasources lists them)`
    : code === "23514" && !constraint
    ? message // the shared-DataKey trigger's own words
    : undefined;
  return reason === undefined ? error as Error : new Error(`Cannot add widget: ${reason}`);
}

function example(type: string): string {
  return type === "DoubleData" ? "primarySubKey=rpm secondarySubKey=vibration" : "labelsKey=machines valuesKey=units";
}

try {
  await main(Deno.args);
} catch (error) {
  console.error(`admin: ${(error as Error).message}`);
  Deno.exit(1);
}
