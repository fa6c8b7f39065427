/**
 * `deno task dev` as a child process on a free port and a temporary folder,
 * with what it printed: the endpoint, the demo key, the database URL.
 *
 * @module
 */
import assert from "node:assert/strict";
import { freePort } from "../../local/net.ts";

/** A running dev server. */
export interface DevServer {
  endpoint: string;
  apiKey: string;
  databaseUrl: string;
  /** Everything it printed so far. */
  output(): string;
  /** Ctrl-C; resolves with all it printed once it exited (asserting exit code 0). */
  stop(): Promise<string>;
}

/**
 * Starts `deno task dev` with `args` on the dev folder `dir` (SUPABASE_JWT_SECRET
 * unset unless `env` says otherwise); resolves once it is ready.
 */
export async function startDevServer(
  dir: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<DevServer> {
  const port = freePort();
  const dev = new Deno.Command(Deno.execPath(), {
    args: ["task", "dev", ...args],
    cwd: new URL("../../", import.meta.url),
    env: { INGEST_DEV_DIR: dir, PORT: String(port), DATABASE_URL: "", SUPABASE_JWT_SECRET: "", NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let output = "";
  const reader = dev.stdout.getReader();
  const stderr = new Response(dev.stderr).text();
  while (!output.includes("Ctrl-C stops it.")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`dev server exited early:\n${output}\n${await stderr}`);
    output += decoder.decode(value);
  }
  // Keep reading so the server never blocks on a full pipe.
  const drained = (async () => {
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      output += decoder.decode(chunk.value);
    }
  })();
  const apiKey = output.match(/API key: +(tw_[0-9a-f]{64})/)?.[1];
  const endpoint = output.match(/Endpoint: +(\S+)/)?.[1];
  const databaseUrl = output.match(/served at (postgres:\/\/\S+)\)/)?.[1];
  assert.ok(apiKey && endpoint && databaseUrl, output);
  assert.equal(endpoint, `http://127.0.0.1:${port}/functions/v1/ingest-data`);
  return {
    endpoint,
    apiKey,
    databaseUrl,
    output: () => output,
    async stop() {
      dev.kill("SIGINT");
      await drained;
      const status = await dev.status;
      assert.equal(status.code, 0, await stderr);
      return output;
    },
  };
}
