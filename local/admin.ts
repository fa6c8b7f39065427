/**
 * `deno task admin <command>`: manage datasources, widgets and API keys
 * without the dashboard, on DATABASE_URL or the running dev server's database.
 */
import postgres from "postgres";
import {
  addWidget,
  asServiceRole,
  createApiKey,
  createDatasource,
  createWorkspace,
  revokeApiKey,
} from "./provisioning.ts";
import { jwtSecret, mintUserToken } from "./jwt.ts";

const USAGE = `Usage: deno task admin <command>

  datasources                                   list datasources
  create-datasource <name> [--workspace <name>] [--no-history] [--doc-widgets]
  add-widget <datasource-id> <SingleData|DoubleData|BarChart|LineChart> <data-key> [setting=value ...]
                                                e.g. add-widget <id> DoubleData motor_stats primarySubKey=rpm secondarySubKey=vibration
  widgets <datasource-id>                       list a datasource's widgets
  create-key <datasource-id> [--name <name>] [--scopes ingest:write,ingest:read] [--expires <ISO date>]
  keys <datasource-id>                          list keys (never their secrets)
  revoke-key <key-id>
  token <user-id> [--expires-in <seconds>]      an access token for a user (HS256, SUPABASE_JWT_SECRET or the
                                                Supabase CLI's local secret), for supabase-js' accessToken

Database: DATABASE_URL, else the dev server's embedded database (start it with deno task dev).`;

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
      case "create-datasource": {
        const name = rest[0];
        if (!name || name.startsWith("--")) throw new Error("create-datasource needs a name");
        const id = await asServiceRole(sql, async (tx) => {
          const workspace = option(rest, "--workspace") ?? "Default";
          const [found] = await tx`select id from public.workspaces where name = ${workspace} limit 1`;
          return createDatasource(tx, found?.id ?? await createWorkspace(tx, workspace), {
            name,
            keepHistory: !rest.includes("--no-history"),
            widgets: rest.includes("--doc-widgets") ? undefined : [],
          });
        });
        console.log(`Created datasource ${name}: ${id}`);
        break;
      }
      case "add-widget": {
        const [datasourceId, type, dataKey, ...settingArgs] = rest;
        if (!datasourceId || !type || !dataKey) throw new Error("add-widget needs <datasource-id> <type> <data-key>");
        const settings = Object.fromEntries(settingArgs.map((s) => s.split("=", 2)));
        const id = await asServiceRole(
          sql,
          (tx) => addWidget(tx, datasourceId, { name: dataKey, widget_type: type, data_key: dataKey, settings }),
        );
        console.log(`Linked ${type} widget on "${dataKey}": ${id}`);
        break;
      }
      case "widgets":
        console.table(
          await sql`select id, name, widget_type, data_key, settings from public.widgets where datasource_id = ${rest[
            0
          ]!}
            order by data_key`,
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
            from public.datasource_api_keys where datasource_id = ${rest[0]!} order by created_at`,
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
        console.log(`Revoked at ${(await revokeApiKey(sql, rest[0]!)).toISOString()}`);
        break;
      default:
        throw new Error(`Unknown command "${command}"\n\n${USAGE}`);
    }
  } finally {
    await sql.end();
  }
}

try {
  await main(Deno.args);
} catch (error) {
  console.error(`admin: ${(error as Error).message}`);
  Deno.exit(1);
}
