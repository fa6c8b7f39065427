/**
 * Provisioning without the dashboard: workspaces, datasources, widgets and
 * API keys, as the service role. Used by the dev server, `deno task admin`,
 * the benchmark and the tests.
 *
 * @module
 */
import type { Sql, TransactionSql } from "postgres";

/** A widget to link to a datasource. */
export interface WidgetSpec {
  name: string;
  widget_type: string;
  data_key: string;
  settings: Record<string, unknown>;
}

/** The documentation's three widgets. */
export const DOC_WIDGETS: readonly WidgetSpec[] = [
  { name: "Temperature", widget_type: "SingleData", data_key: "temperature", settings: {} },
  {
    name: "Motor",
    widget_type: "DoubleData",
    data_key: "motor_stats",
    settings: { primarySubKey: "rpm", secondarySubKey: "vibration" },
  },
  {
    name: "Production",
    widget_type: "BarChart",
    data_key: "production_output",
    settings: { labelsKey: "machines", valuesKey: "units_per_hour" },
  },
];

/** Runs `fn` in a transaction as the service role, with the JWT claims PostgREST would set. */
export function asServiceRole<T>(sql: Sql, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  return sql.begin(async (tx) => {
    await tx`set local role service_role`;
    await tx`select set_config('request.jwt.claims', '{"role":"service_role"}', true)`;
    return await fn(tx);
  }) as Promise<T>;
}

/** Creates a workspace and returns its id. */
export async function createWorkspace(sql: Sql | TransactionSql, name: string): Promise<string> {
  const [row] = await sql`insert into public.workspaces (name) values (${name}) returning id`;
  return row!.id as string;
}

/** Creates a datasource with widgets in a workspace and returns its id. */
export async function createDatasource(
  sql: Sql | TransactionSql,
  workspaceId: string,
  options: { name?: string; widgets?: readonly WidgetSpec[]; keepHistory?: boolean } = {},
): Promise<string> {
  const [ds] = await sql`insert into public.datasources (workspace_id, name, keep_history)
    values (${workspaceId}, ${options.name ?? "Line 1"}, ${options.keepHistory ?? true}) returning id`;
  for (const widget of options.widgets ?? DOC_WIDGETS) await addWidget(sql, ds!.id, widget);
  return ds!.id as string;
}

/** Links a widget to a datasource and returns its id. */
export async function addWidget(sql: Sql | TransactionSql, datasourceId: string, widget: WidgetSpec): Promise<string> {
  const [row] = await sql`insert into public.widgets (datasource_id, name, widget_type, data_key, settings)
    values (${datasourceId}, ${widget.name}, ${widget.widget_type}, ${widget.data_key},
            ${sql.json(widget.settings as never)}) returning id`;
  return row!.id as string;
}

/** A new key, in plain text: shown once. */
export interface CreatedKey {
  keyId: string;
  apiKey: string;
  prefix: string;
}

/** Creates an API key through create_datasource_api_key, as the service role. */
export async function createApiKey(
  sql: Sql,
  datasourceId: string,
  options: { name?: string; scopes?: string[]; expiresAt?: Date } = {},
): Promise<CreatedKey> {
  const [row] = await asServiceRole(
    sql,
    (tx) =>
      tx`select * from public.create_datasource_api_key(${datasourceId}, ${options.name ?? "api key"},
      ${options.scopes ?? ["ingest:write"]}, ${options.expiresAt ?? null})`,
  );
  return { keyId: row!.id, apiKey: row!.api_key, prefix: row!.prefix };
}

/** Revokes a key through revoke_datasource_api_key, as the service role. */
export async function revokeApiKey(sql: Sql, keyId: string): Promise<Date> {
  const [row] = await asServiceRole(sql, (tx) => tx`select public.revoke_datasource_api_key(${keyId}) as at`);
  return row!.at as Date;
}
