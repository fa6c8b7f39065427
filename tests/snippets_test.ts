/**
 * The "Send data from ..." snippets in docs/snippets run as a user runs them
 * (sh + curl, python3 + requests, node + fetch, Node-RED itself), against the
 * function served on a free port with a test database, the URL and key in
 * environment variables. Each snippet's first request is stored but its
 * answer lost (the client gets a 503 with Retry-After instead): each must
 * retry with the same Idempotency-Key, be answered from the first commit, and
 * the values end up stored exactly once. The ESP32 sketch is not run (no board).
 */
import assert from "node:assert/strict";
import { errorResponse, HttpError } from "../supabase/functions/ingest-data/http_error.ts";
import { freePort } from "../local/net.ts";
import { createTestDatabase } from "./support/database.ts";
import { createTestFunction, DOC_PAYLOADS, postRequest } from "./support/function.ts";
import { seedWorkspace } from "./support/seed.ts";

const SNIPPETS = new URL("../docs/snippets/", import.meta.url);
/** Node-RED 4 runs on Node.js 18.5+ (5.x needs 22); pinned like every other tool. */
const NODE_RED = "node-red@4.1.8";

type Runner = (env: Record<string, string>) => Promise<string>;

/** Runs a command to its end; fails the test on a non-zero exit. */
async function run(command: string, args: string[], env: Record<string, string>): Promise<string> {
  const output = await new Deno.Command(command, { args, env, cwd: SNIPPETS }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `${command} ${args.join(" ")}:\n${text}`);
  return text;
}

/** Starts Node-RED on the flow, waits for its "stored" debug line, stops it. */
async function runNodeRed(env: Record<string, string>): Promise<string> {
  const userDir = await Deno.makeTempDir({ prefix: "twinnoverse-node-red-" });
  await Deno.copyFile(new URL("node_red_flow.json", SNIPPETS), `${userDir}/flows.json`);
  // npx does not pass Ctrl-C on promptly: run Node-RED's own executable, which npx installed.
  const which = await run("npx", ["--yes", `--package=${NODE_RED}`, "-c", "command -v node-red"], {
    PATH: Deno.env.get("PATH") ?? "",
    HOME: Deno.env.get("HOME") ?? "/tmp",
  });
  const child = new Deno.Command(which.trim().split("\n").at(-1)!, {
    args: ["--port", String(freePort()), "--userDir", userDir, `${userDir}/flows.json`],
    env: { ...env, NODE_RED_ENABLE_PROJECTS: "false" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let output = "";
  try {
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      output += decoder.decode(chunk, { stream: true });
      if (/\[debug:stored\][\s\S]*temperature/.test(output) || /\[debug:refused/.test(output)) break;
    }
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await Deno.remove(userDir, { recursive: true });
  }
  assert.match(output, /\[debug:stored\]/, `${output}\n${await stderr}`);
  return output;
}

/** The first python3 that has requests: the one on PATH (pyenv, venv), else Debian's (python3-requests). */
async function pythonWithRequests(): Promise<string> {
  for (const python of ["python3", "/usr/bin/python3"]) {
    const probe = await new Deno.Command(python, { args: ["-c", "import requests"], stderr: "null" }).output()
      .catch(() => ({ code: 1 }));
    if (probe.code === 0) return python;
  }
  throw new Error("No python3 with requests: apt-get install python3-requests (as .ci/run does)");
}

const RUNNERS: Record<string, Runner> = {
  "curl (sh)": (env) => run("sh", ["send_curl.sh"], env),
  "Python (requests)": async (env) => run(await pythonWithRequests(), ["send_python.py"], env),
  "Node.js (fetch)": (env) => run("node", ["send_node.mjs"], env),
  "Node-RED (flow)": runNodeRed,
};

for (const [label, runner] of Object.entries(RUNNERS)) {
  Deno.test(`snippet "Send data from ${label}" stores the documentation's payload once, though its first answer was lost`, async () => {
    await using db = await createTestDatabase();
    const s = await seedWorkspace(db.sql);
    await using fn = createTestFunction(db.url);
    // The first request is stored, but its answer is lost: the client gets a 503 instead.
    const attempts: { idempotencyKey: string | null; replayed: string | null }[] = [];
    await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
      const idempotencyKey = request.headers.get("Idempotency-Key");
      const response = await fn.handle(request);
      attempts.push({ idempotencyKey, replayed: response.headers.get("Idempotent-Replayed") });
      if (attempts.length > 1) return response;
      await response.body?.cancel();
      const lost = new HttpError(503, "service_unavailable", "Service unavailable: retry later", {
        headers: { "Retry-After": "1" },
      });
      return errorResponse(lost, { requestId: crypto.randomUUID() });
    });
    const env = {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      INGEST_URL: `http://127.0.0.1:${server.addr.port}/functions/v1/ingest-data`,
      INGEST_API_KEY: s.apiKey,
    };
    const output = await runner(env);
    assert.ok(attempts.length >= 2, `the snippet did not retry after the 503:\n${output}`);
    assert.match(attempts[0]!.idempotencyKey ?? "", /^[!-~]{1,255}$/, "no Idempotency-Key");
    assert.equal(attempts[1]!.idempotencyKey, attempts[0]!.idempotencyKey, "the retry changed its Idempotency-Key");
    assert.equal(attempts[1]!.replayed, "true", "the retry was not answered from the first commit");
    assert.ok(!output.includes(s.apiKey), "the snippet printed the key");
    const rows = await db
      .sql`select data_key, value from public.datasource_values where datasource_id = ${s.datasourceId}`;
    assert.deepEqual(Object.fromEntries(rows.map((r) => [r.data_key, r.value])), JSON.parse(DOC_PAYLOADS.combined));
    const [readings] = await db.sql`select count(*)::int as n from public.datasource_readings
      where datasource_id = ${s.datasourceId}`;
    assert.equal(readings!.n, 3, "each DataKey stored once, though sent twice");
  });
}

Deno.test("the Node-RED flow: key in the http request node's own headers, no Basic auth, a switch on msg.statusCode", async () => {
  const flow: Record<string, unknown>[] = JSON.parse(await Deno.readTextFile(new URL("node_red_flow.json", SNIPPETS)));
  const byId = new Map(flow.map((node) => [node.id as string, node]));
  assert.equal(byId.size, flow.length, "ids are unique");
  for (const node of flow) {
    for (const output of (node.wires as string[][] | undefined) ?? []) {
      for (const target of output) assert.ok(byId.has(target), `${node.id} wires to missing ${target}`);
    }
  }
  const request = flow.find((node) => node.type === "http request")!;
  assert.equal(request.method, "POST");
  assert.equal(request.authType, "", "basic authentication would send Authorization: Basic");
  assert.deepEqual(
    (request.headers as Record<string, string>[]).find((h) => h.keyValue === "X-API-Key"),
    { keyType: "other", keyValue: "X-API-Key", valueType: "other", valueValue: "${INGEST_API_KEY}" },
  );
  const next = byId.get((request.wires as string[][])[0]![0]!)!;
  assert.equal(next.type, "switch");
  assert.equal(next.property, "statusCode");
  assert.deepEqual(
    (next.rules as { t: string; v?: string }[]).map((rule) => `${rule.t} ${rule.v ?? ""}`.trim()),
    ["eq 200", "eq 409", "eq 429", "eq 503", "istype string", "else"],
  );
  // 409, 429, 503 and no answer (a string code such as ECONNRESET) go back to the http request node through
  // a function and a delay; anything else to a debug node.
  const [stored, ...rest] = (next.wires as string[][]).map((targets) => byId.get(targets[0]!)!);
  const other = rest.pop();
  assert.equal(stored!.type, "debug");
  assert.equal(new Set(rest).size, 1);
  const delay = byId.get((rest[0]!.wires as string[][])[0]![0]!)!;
  assert.equal(delay.type, "delay");
  assert.deepEqual(delay.wires, [[request.id]]);
  assert.equal(other!.type, "debug");
});

/** Runs a command to its end, whatever its exit code. */
async function runAny(command: string, args: string[], env: Record<string, string>) {
  const output = await new Deno.Command(command, { args, env, cwd: SNIPPETS }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

const KEYLESS: Record<string, () => Promise<[string, string[]]>> = {
  "curl (sh)": () => Promise.resolve(["sh", ["send_curl.sh"]]),
  "Python (requests)": async () => [await pythonWithRequests(), ["send_python.py"]],
  "Node.js (fetch)": () => Promise.resolve(["node", ["send_node.mjs"]]),
};

for (const [label, command] of Object.entries(KEYLESS)) {
  Deno.test(`snippet "Send data from ${label}" without INGEST_API_KEY says so in one line, sends nothing`, async () => {
    let requests = 0;
    await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
      requests++;
      return new Response(null, { status: 500 });
    });
    const [program, args] = await command();
    const run = await runAny(program, args, {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      INGEST_URL: `http://127.0.0.1:${server.addr.port}/functions/v1/ingest-data`,
    });
    assert.notEqual(run.code, 0);
    assert.equal(run.stdout, "");
    const lines = run.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, `more than the message (a traceback, a stack):\n${run.stderr}`);
    assert.match(lines[0]!, /set INGEST_API_KEY to the API key of your datasource$/);
    assert.equal(requests, 0);
  });
}

Deno.test(`snippet "Send data from curl (sh)": a refusal prints the error body, then a newline, then curl's line`, async () => {
  await using db = await createTestDatabase();
  await using fn = createTestFunction(db.url);
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, fn.handle);
  const run = await runAny("sh", ["send_curl.sh"], {
    PATH: Deno.env.get("PATH") ?? "",
    INGEST_URL: `http://127.0.0.1:${server.addr.port}/functions/v1/ingest-data`,
    INGEST_API_KEY: `tw_${"x".repeat(40)}`,
  });
  assert.notEqual(run.code, 0);
  assert.ok(
    run.stdout.endsWith("}\n"),
    `the shell prompt would follow the body on its line: ${JSON.stringify(run.stdout)}`,
  );
  assert.equal(JSON.parse(run.stdout).code, "invalid_api_key");
  assert.match(run.stderr, /^curl: \(22\) The requested URL returned error: 401\n$/);
});

/** The first fenced block of `language` after `heading` in a Markdown text. */
function blockAfter(markdown: string, heading: string, language: string): string {
  const section = markdown.slice(markdown.indexOf(`\n${heading}\n`));
  const block = section.match(new RegExp("^```" + language + "\\n([\\s\\S]*?)^```$", "m"))?.[1];
  assert.ok(block, `no ${language} block after ${heading}`);
  return block;
}

Deno.test("docs/api.md's readings example, run after a value POSTed earlier, answers the documented readings and latest", async () => {
  const api = await Deno.readTextFile(new URL("../docs/api.md", import.meta.url));
  const heading = "## Readings with their own times (gateways)";
  const example = blockAfter(api, heading, "sh");
  const documented = JSON.parse(blockAfter(api, heading, "json"));
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  // What a newcomer did a little earlier: the documentation's single payload.
  const earlier = new Date(Date.now() - 10_000).toISOString();
  const first = await fn.handle(
    postRequest({ temperature: 42.5 }, { key: s.apiKey, query: `?observed_at=${earlier}` }),
  );
  assert.equal(first.status, 200, await first.text());
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, fn.handle);

  const { code, stdout, stderr } = await runAny("sh", ["-c", example], {
    PATH: Deno.env.get("PATH") ?? "",
    URL: `http://127.0.0.1:${server.addr.port}/functions/v1/ingest-data`,
    KEY: s.apiKey,
  });
  assert.equal(code, 0, stderr);
  const answer = JSON.parse(stdout);
  assert.deepEqual([answer.ok, answer.readings, answer.latest], [
    documented.ok,
    documented.readings,
    documented.latest,
  ]);
  const rows = await db
    .sql`select data_key, value from public.datasource_values where datasource_id = ${s.datasourceId}`;
  assert.deepEqual(Object.fromEntries(rows.map((r) => [r.data_key, r.value])), {
    temperature: 42.1,
    motor_stats: { rpm: 1490, vibration: 0.7 },
  });
});
