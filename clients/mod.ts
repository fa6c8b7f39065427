/**
 * `@twinnoverse/client`: a Twinnoverse datasource's live values ({@linkcode watchDatasource}) and history
 * ({@linkcode datasourceHistory}) for dashboards, through the supabase-js client they already have.
 *
 * @module
 */
export * from "./watch_datasource.ts";
export * from "./datasource_history.ts";
