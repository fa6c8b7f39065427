/// <reference lib="dom" />
/**
 * `clients/` as the npm package `@twinnoverse/client`, the way a dashboard in
 * another repository gets it: `npm pack` (which builds it), the tarball
 * installed with npm into an empty Node project (type-checked against the
 * package's types, then run on Node) and into a Vite app (built, served from
 * another origin, opened in headless Chromium), each reading history and
 * showing a live value from `deno task dev`.
 */
import assert from "node:assert/strict";
import { launchChromium } from "../../local/chromium.ts";
import { type DevServer, startDevServer } from "../support/dev_server.ts";

const CLIENTS = new URL("../../clients/", import.meta.url);
/** What the consumers install beside the tarball, pinned. */
const SUPABASE_JS = "@supabase/supabase-js@2.119.1";
const WS = "ws@8.23.1"; // Node 20 has no global WebSocket
const TYPESCRIPT = "typescript@7.0.2";
const VITE = "vite@7.3.8";

/** A minute ten minutes ago, on the minute: the readings the consumers read back. */
const T0 = Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000;
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();
const READINGS: [number, number][] = [[5, 10], [20, 20], [59, 33]]; // seconds after T0, temperature: average 21

const started = performance.now();
/** One progress line on stderr. */
function progress(what: string) {
  console.error(`  package_test ${((performance.now() - started) / 1000).toFixed(1)}s: ${what}`);
}

/** Runs `command` in `cwd`; returns its stdout, or throws with all it printed. */
async function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  const output = await new Deno.Command(command, {
    args,
    cwd,
    env: { npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr);
    throw new Error(`${command} ${args.join(" ")} (in ${cwd}) failed:\n${stdout}\n${stderr}`);
  }
  return stdout;
}

/** Copies the folder `from` to `to`, leaving out the names in `skip`. */
async function copyTree(from: string, to: string, skip: string[]) {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (skip.includes(entry.name)) continue;
    if (entry.isDirectory) await copyTree(`${from}/${entry.name}`, `${to}/${entry.name}`, skip);
    else await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

/** Packs a copy of clients/ as its maintainer would (`npm install`, `npm pack`); returns the tarball's path. */
async function pack(work: string): Promise<{ tarball: string; files: string[] }> {
  const source = `${work}/client`;
  await copyTree(CLIENTS.pathname, source, ["node_modules", "dist"]);
  progress("npm install in a copy of clients/");
  await run("npm", ["install", "--prefer-offline", "--loglevel=error"], source);
  progress("npm pack (builds with tsc)");
  const [packed] = JSON.parse(await run("npm", ["pack", "--json", "--pack-destination", work], source));
  return { tarball: `${work}/${packed.filename}`, files: packed.files.map((f: { path: string }) => f.path).sort() };
}

/** Creates the folder `dir` with `files` (path: text) in it. */
async function writeFiles(dir: string, files: Record<string, string>) {
  for (const [path, text] of Object.entries(files)) {
    const file = `${dir}/${path}`;
    await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(file, text);
  }
}

/** An empty Node project with the tarball, supabase-js, ws and typescript installed. */
async function nodeProject(dir: string, tarball: string) {
  await writeFiles(dir, {
    "package.json": JSON.stringify({ name: "node-dashboard", private: true, type: "module" }),
    "tsconfig.json": JSON.stringify({
      compilerOptions: {
        module: "nodenext",
        target: "es2022",
        lib: ["es2022", "dom"],
        types: [],
        strict: true,
        noEmit: true,
        skipLibCheck: true, // as Vite's templates: supabase-js's own declarations need @types/node
      },
      files: ["types_check.ts"],
    }),
    "types_check.ts": TYPES_CHECK,
    "dashboard.mjs": NODE_DASHBOARD,
  });
  await run("npm", ["install", "--prefer-offline", "--loglevel=error", tarball, SUPABASE_JS, WS, TYPESCRIPT], dir);
}

/** A Vite app with the tarball and supabase-js installed, built with the dev server's `.env` lines. */
async function viteApp(dir: string, tarball: string, env: Record<string, string>) {
  await writeFiles(dir, {
    "package.json": JSON.stringify({ name: "vite-dashboard", private: true, type: "module" }),
    ".env": [
      `VITE_SUPABASE_URL=${env.SUPABASE_URL}`,
      `VITE_SUPABASE_ANON_KEY=${env.SUPABASE_ANON_KEY}`,
      `VITE_ACCESS_TOKEN=${env.DEMO_ACCESS_TOKEN}`,
      `VITE_DATASOURCE_ID=${env.DEMO_DATASOURCE_ID}`,
    ].join("\n"),
    "index.html": VITE_INDEX,
    "src/main.js": VITE_MAIN,
  });
  await run("npm", ["install", "--prefer-offline", "--loglevel=error", tarball, SUPABASE_JS, VITE], dir);
  progress("vite build");
  await run("node", ["node_modules/vite/bin/vite.js", "build", "--logLevel", "error"], dir);
}

/** Serves the folder `dir` on a free port of 127.0.0.1 (another origin than the dev server's). */
function serveStatic(dir: string): Deno.HttpServer<Deno.NetAddr> {
  const types: Record<string, string> = { html: "text/html", js: "text/javascript", css: "text/css" };
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const path = new URL(request.url).pathname.replace(/\/$/, "/index.html");
    if (path.includes("..")) return new Response("bad path", { status: 400 });
    try {
      const body = await Deno.readFile(`${dir}${path}`);
      return new Response(body, { headers: { "content-type": types[path.split(".").pop()!] ?? "text/plain" } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

/** The dev server's `.env` lines. */
function envLines(dev: DevServer): Record<string, string> {
  const env = Object.fromEntries([...dev.output().matchAll(/^([A-Z_]+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  assert.ok(env.SUPABASE_URL && env.SUPABASE_ANON_KEY && env.DEMO_ACCESS_TOKEN && env.DEMO_DATASOURCE_ID);
  return env;
}

/** POSTs `body` to the dev server with its demo key; asserts 200. */
async function post(dev: DevServer, body: unknown) {
  const res = await fetch(dev.endpoint, {
    method: "POST",
    headers: { "X-API-Key": dev.apiKey, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, await res.text());
}

Deno.test("npm package: packed, installed from the tarball into a Node project and a Vite app, both read history and live values", async (t) => {
  const work = await Deno.makeTempDir({ prefix: "twinnoverse-package-" });
  progress(`deno task dev and npm pack, in ${work}`);
  const devStarting = startDevServer(`${work}/dev`, ["--reset"]);
  let dev: DevServer | undefined;
  try {
    const [{ tarball, files }, running] = await Promise.all([pack(work), devStarting]);
    dev = running;
    const env = envLines(dev);
    await post(dev, READINGS.map(([t, temperature]) => ({ observed_at: at(t), values: { temperature } })));

    await t.step(
      "the tarball holds the built ESM, its types, the readme and package.json: no sources, no twin view",
      () => {
        assert.ok(files.includes("dist/mod.js") && files.includes("dist/mod.d.ts"), files.join(", "));
        const stray = files.filter((f) =>
          !/^dist\/[a-z_]+\.(js|d\.ts)$/.test(f) && f !== "README.md" && f !== "package.json"
        );
        assert.deepEqual(stray, []);
        assert.ok(files.includes("README.md"), files.join(", "));
      },
    );

    progress("npm install of the tarball into a Node project and a Vite app");
    await Promise.all([nodeProject(`${work}/node`, tarball), viteApp(`${work}/vite`, tarball, env)]);

    await t.step("Node: the package's types check (tsc, nodenext) and are typed per widget", async () => {
      progress("tsc --noEmit in the Node project");
      await run("node", ["node_modules/typescript/bin/tsc", "-p", "."], `${work}/node`);
    });

    await t.step("Node: history (none with a cursor, avg) and a live value with ws as the transport", async () => {
      progress("node dashboard.mjs");
      const stdout = await run("node", ["dashboard.mjs"], `${work}/node`, {
        ...env,
        INGEST_URL: dev!.endpoint,
        INGEST_API_KEY: dev!.apiKey,
        FROM: at(0),
        TO: at(60),
      });
      const result = JSON.parse(stdout.trim().split("\n").at(-1)!);
      assert.deepEqual(result.pages, [[[at(5), 10], [at(20), 20]], [[at(59), 33]]]);
      assert.deepEqual(result.average, [["temperature", at(0), 21, 3]]);
      assert.deepEqual(result.refused, { name: "HistoryError", code: "22023", instance: true });
      assert.equal(result.live, 17.25);
      assert.deepEqual(result.statuses.slice(0, 2), ["connecting", "live"]);
    });

    await t.step(
      "a Vite app served from another origin shows a history value and a live value in Chromium",
      async () => {
        const server = serveStatic(`${work}/vite/dist`);
        try {
          const origin = `http://127.0.0.1:${server.addr.port}`;
          assert.notEqual(origin, env.SUPABASE_URL);
          progress(`Chromium on the Vite build at ${origin}`);
          await using chromium = await launchChromium();
          const page = await chromium.browser.newPage();
          const errors: string[] = [];
          page.on("console", (m) => m.type() === "error" && errors.push(`console.error: ${m.text()}`));
          page.on("pageerror", (error) => errors.push(`page error: ${error}`));
          page.on("requestfailed", (request) => errors.push(`request failed: ${request.url()}`));
          await page.goto(`${origin}/`, { waitUntil: "load" });
          await page.waitForSelector('#status[data-status="live"]', { timeout: 20_000 });
          const bucket = await page.waitForSelector(`#history li[data-time="${at(0)}"]`, { timeout: 10_000 });
          assert.equal(await bucket!.evaluate((li) => li.textContent), "21");
          await post(dev!, { temperature: 23.5 });
          await page.waitForFunction(() => document.querySelector("#live")?.textContent === "23.5", {
            timeout: 10_000,
          });
          assert.deepEqual(errors, []);
        } finally {
          await server.shutdown();
        }
      },
    );
  } finally {
    dev ??= await devStarting.catch(() => undefined);
    await dev?.stop();
    await Deno.remove(work, { recursive: true });
    progress("done");
  }
});

/** A Node dashboard as the README shows it: history, then a live value (the script POSTs it once live). */
const NODE_DASHBOARD = `
import { createClient } from "@supabase/supabase-js";
import { datasourceHistory, HistoryError, watchDatasource } from "@twinnoverse/client";
import WebSocket from "ws";

const env = process.env;
const supabase = createClient(env.SUPABASE_URL, env.SUPABASE_ANON_KEY, {
  accessToken: async () => env.DEMO_ACCESS_TOKEN,
  realtime: { transport: WebSocket }, // Node 20: no global WebSocket
});
const id = env.DEMO_DATASOURCE_ID;
const window = { keys: ["temperature"], from: new Date(env.FROM), to: new Date(env.TO) };

const pages = [];
let cursor;
do {
  const page = await datasourceHistory(supabase, id, { ...window, agg: "none", limit: 2, cursor });
  pages.push(page.map((p) => [p.time, p.value]));
  cursor = page.length === 2 ? page.at(-1).cursor : undefined;
} while (cursor && pages.length < 5);
const average = (await datasourceHistory(supabase, id, { ...window, interval: "1 minute", agg: "avg" }))
  .map((p) => [p.dataKey, p.time, p.value, p.readings]);
const refused = await datasourceHistory(supabase, id, { ...window, agg: "median" }).then(
  () => null,
  (e) => ({ name: e.name, code: e.code, instance: e instanceof HistoryError }),
);

const statuses = [];
const live = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("no live value in 15 s: " + statuses.join(", "))), 15_000);
  const watch = watchDatasource(supabase, id, {
    onStatus(status) {
      statuses.push(status);
      if (status !== "live" || statuses.indexOf("live") !== statuses.length - 1) return;
      fetch(env.INGEST_URL, {
        method: "POST",
        headers: { "X-API-Key": env.INGEST_API_KEY, "Content-Type": "application/json" },
        body: JSON.stringify({ temperature: 17.25 }),
      }).then((res) => res.ok || reject(new Error("POST " + res.status)), reject);
    },
    onValues(values) {
      if (values.temperature?.value !== 17.25) return;
      clearTimeout(timer);
      watch.stop().then(() => resolve(values.temperature.value), reject);
    },
  });
});
await supabase.removeAllChannels();
console.log(JSON.stringify({ pages, average, refused, live, statuses }));
process.exit(0);
`;

/** Compiles only if the package's types are found (exports.types) and typed per widget; each @ts-expect-error must err. */
const TYPES_CHECK = `
import { createClient } from "@supabase/supabase-js";
import {
  type ChartValue,
  datasourceHistory,
  type DoubleDataValue,
  HistoryError,
  type SingleDataValue,
  type Watch,
  watchDatasource,
} from "@twinnoverse/client";

type Demo = {
  temperature: SingleDataValue;
  motor_stats: DoubleDataValue<"rpm", "vibration">;
  production_output: ChartValue<"machines", "units_per_hour">;
};
const supabase = createClient("http://127.0.0.1:54321", "anon key");
const window = { keys: ["temperature"], from: new Date(0), to: new Date() };

const averages = await datasourceHistory(supabase, "id", { ...window, interval: "1 minute" });
export const average: number = averages[0]!.value;
const readings = await datasourceHistory(supabase, "id", { ...window, agg: "none" });
// @ts-expect-error a reading is what the widget stores, not only a number
export const reading: number = readings[0]!.value;
const charts = await datasourceHistory<"last", Demo["production_output"]>(supabase, "id", {
  ...window,
  interval: "1 hour",
  agg: "last",
});
export const units: number[] = charts[0]!.value.units_per_hour;
// @ts-expect-error not an aggregate
await datasourceHistory(supabase, "id", { ...window, agg: "median" });

export const watch: Watch<Demo> = watchDatasource<Demo>(supabase, "id", {
  onValues(values, changed) {
    const rpm: number | string | undefined = values.motor_stats?.value.rpm;
    const labels: (string | number)[] | undefined = values.production_output?.value.machines;
    const keys: (keyof Demo)[] = changed;
    // @ts-expect-error not a DataKey of Demo
    values.pressure;
    // @ts-expect-error not a sub-key of motor_stats
    values.motor_stats?.value.torque;
    // @ts-expect-error a chart's values are numbers
    const strings: string[] | undefined = values.production_output?.value.units_per_hour;
    console.log(rpm, labels, keys, strings);
  },
});
export const untyped = watchDatasource(supabase, "id", { onValues: (values) => values["any key"]?.value });
export const refused: HistoryError = new HistoryError("Cannot read history", "22023");
`;

/** The Vite app's page: the last hour at 1 minute, and the live temperature. */
const VITE_INDEX = `<!doctype html>
<html>
  <head><meta charset="utf-8"><link rel="icon" href="data:,"><title>A dashboard in another repository</title></head>
  <body>
    <p id="status" data-status="">…</p>
    <p>Temperature: <output id="live"></output></p>
    <ol id="history"></ol>
    <script type="module" src="/src/main.js"></script>
  </body>
</html>
`;

const VITE_MAIN = `
import { createClient } from "@supabase/supabase-js";
import { datasourceHistory, watchDatasource } from "@twinnoverse/client";

const env = import.meta.env;
const supabase = createClient(env.VITE_SUPABASE_URL, env.VITE_SUPABASE_ANON_KEY, {
  accessToken: async () => env.VITE_ACCESS_TOKEN,
});
const id = env.VITE_DATASOURCE_ID;

const lastHour = { keys: ["temperature"], from: new Date(Date.now() - 3600_000), to: new Date() };
datasourceHistory(supabase, id, { ...lastHour, interval: "1 minute", agg: "avg" }).then((points) =>
  document.getElementById("history").replaceChildren(...points.map((point) => {
    const item = document.createElement("li");
    item.dataset.time = point.time;
    item.textContent = String(point.value);
    return item;
  }))
);

watchDatasource(supabase, id, {
  onValues: (values) => document.getElementById("live").textContent = String(values.temperature?.value ?? ""),
  onStatus: (status) => {
    const element = document.getElementById("status");
    element.dataset.status = status;
    element.textContent = status;
  },
});
`;
