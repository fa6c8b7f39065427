/**
 * The ingest-data handler on a test database, with its log lines captured.
 *
 * @module
 */
import { loadConfig } from "../../supabase/functions/ingest-data/config.ts";
import { createHandler, type RequestLog } from "../../supabase/functions/ingest-data/handler.ts";
import { createStore } from "../../supabase/functions/ingest-data/create_store.ts";
import type { Store } from "../../supabase/functions/ingest-data/store.ts";

/** A handler wired to a real database, as index.ts wires it. */
export interface TestFunction extends AsyncDisposable {
  handle: (request: Request) => Promise<Response>;
  logs: RequestLog[];
  store: Store;
}

/** Creates the handler on `databaseUrl` with extra environment settings. */
export function createTestFunction(databaseUrl: string, env: Record<string, string> = {}): TestFunction {
  const config = loadConfig({ DATABASE_URL: databaseUrl, ...env });
  const store = createStore(config.store);
  const logs: RequestLog[] = [];
  const handle = createHandler({ config, store, log: (line) => logs.push(line) });
  return { handle, logs, store, [Symbol.asyncDispose]: () => store.close() };
}

/** The endpoint's URL in tests. */
export const ENDPOINT = "http://localhost/functions/v1/ingest-data";

/** A POST request like the documentation's cURL example; `body` is sent as is when a string. */
export function postRequest(
  body: unknown,
  options: { key?: string; header?: "x-api-key" | "bearer"; query?: string; headers?: Record<string, string> } = {},
): Request {
  const headers = new Headers({ "Content-Type": "application/json", ...options.headers });
  if (options.key !== undefined) {
    if (options.header === "bearer") headers.set("Authorization", `Bearer ${options.key}`);
    else headers.set("X-API-Key", options.key);
  }
  return new Request(ENDPOINT + (options.query ?? ""), {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** The documentation's payloads, verbatim. */
export const DOC_PAYLOADS = {
  single: `{
"temperature": 42.5
}`,
  double: `{
"motor_stats": {
"rpm": 1500,
"vibration": 0.75
}
}`,
  chart: `{
"production_output": {
"machines": ["Machine A", "Machine B", "Machine C"],
"units_per_hour": [112, 124, 98]
}
}`,
  combined: `{
"temperature": 42.5,
"motor_stats": {
"rpm": 1500,
"vibration": 0.75
},
"production_output": {
"machines": ["Machine A", "Machine B", "Machine C"],
"units_per_hour": [112, 124, 98]
}
}`,
};
