/**
 * `deno task bench:floor`: what bounds issue 22's goals on this machine. The
 * same wrk load as `deno task bench` (the documentation's combined payload,
 * one POST per request) against servers that do less and less of the
 * function's work (bench/floor_server.ts: `http` reads and parses the body and
 * answers; `select` adds one `select 1` round trip; `insert` adds a one-row
 * insert committed on its own; `batched` group-commits that row with the
 * requests waiting at the time), then against the function itself (default
 * limits), one after the other on one durable PostgreSQL. Then `http` and
 * `batched` again, each request answered no sooner than the function took on
 * average at that many connections (FLOOR_DELAY_MS), so that they serve about
 * the function's rate: a server's CPU per request grows as its rate falls
 * (fewer requests share each wake-up), so that is the floor to compare the
 * function with. For each: requests a second, and the CPU per request of the
 * serving process and of PostgreSQL.
 *
 * Options: --duration=10 --connections=64,1 --datasources=100 --warmup=3
 */
import { freePort, waitForPort } from "../local/net.ts";
import {
  cpuSeconds,
  postgresCpuSeconds,
  progress,
  requireTool,
  round,
  scriptOptions,
  seedDatasources,
  type SeededKey,
  startDurablePostgres,
  startFunction,
  wrk,
} from "./load.ts";

const { duration: DURATION_S, connections: CONNECTION_LIST, datasources: DATASOURCES, warmup: WARMUP_S } =
  scriptOptions({ duration: 10, connections: "64,1", datasources: 100, warmup: 3 });
const SERVERS = ["http", "select", "insert", "batched", "function"] as const;
const CONNECTIONS = CONNECTION_LIST.split(",").map(Number);

await requireTool("wrk", "wrk");
const { server, sql } = await startDurablePostgres();
const rows: string[] = [];
try {
  await sql`create table public.bench_floor (id bigint generated always as identity primary key, body jsonb)`;
  const keys = await seedDatasources(sql, DATASOURCES);
  const functionRates = new Map<number, number>();
  for (const name of SERVERS) {
    const started = name === "function" ? await startFunction(server.url) : await startFloorServer(name);
    try {
      for (const connections of CONNECTIONS) {
        const measured = await measure(name, started, keys, connections);
        rows.push(measured.row);
        if (name === "function") functionRates.set(connections, measured.requestsPerS);
      }
    } finally {
      await stop(started);
    }
  }
  for (const name of ["http", "batched"]) {
    for (const connections of CONNECTIONS) {
      // The function's mean time to answer at that rate: each connection sends its next request when answered.
      const delayMs = round(connections * 1000 / functionRates.get(connections)!);
      const started = await startFloorServer(name, delayMs);
      try {
        rows.push((await measure(`${name}, held ${delayMs} ms`, started, keys, connections)).row);
      } finally {
        await stop(started);
      }
    }
  }
} finally {
  await sql.end();
  await server.stop();
}
console.log(`\nMachine: ${navigator.hardwareConcurrency} cores; PostgreSQL with fsync and synchronous_commit on\n`);
console.log("| server | connections | req/s | server CPU µs/request | PostgreSQL CPU µs/request |");
console.log("| --- | ---: | ---: | ---: | ---: |");
for (const row of rows) console.log(row);

/** bench/floor_server.ts in FLOOR_MODE `mode` on its own port, answering no sooner than `delayMs` after a request. */
async function startFloorServer(mode: string, delayMs = 0): Promise<{ url: string; process: Deno.ChildProcess }> {
  const port = freePort();
  const process = new Deno.Command(Deno.execPath(), {
    args: ["serve", "--allow-net", "--allow-env", "--port", String(port), "bench/floor_server.ts"],
    cwd: new URL("../", import.meta.url).pathname,
    env: { FLOOR_MODE: mode, FLOOR_DELAY_MS: String(delayMs), DATABASE_URL: server.url },
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitForPort(port);
  return { url: `http://127.0.0.1:${port}/`, process };
}

/** One phase: warm-up, then wrk with the CPU of the server and of PostgreSQL read around it. */
async function measure(
  name: string,
  started: { url: string; process: Deno.ChildProcess },
  keys: SeededKey[],
  connections: number,
): Promise<{ row: string; requestsPerS: number }> {
  progress("floor", `${name}: ${connections} connections, ${WARMUP_S}s warm-up, then ${DURATION_S}s measured`);
  await wrk(started.url, { keys, connections, durationS: WARMUP_S });
  await sql`checkpoint`;
  const before = { pg: postgresCpuSeconds(server.dataDir), server: cpuSeconds(started.process.pid) };
  const figures = await wrk(started.url, { keys, connections, durationS: DURATION_S });
  const pg = postgresCpuSeconds(server.dataDir) - before.pg;
  const serverCpu = cpuSeconds(started.process.pid) - before.server;
  const perRequest = (seconds: number) => round(seconds * 1e6 / figures.ok);
  return {
    row: `| ${name} | ${connections} | ${figures.requests_per_s} | ${perRequest(serverCpu)} | ${perRequest(pg)} |`,
    // Answered requests only: a refused one would make the function's rate, and so the held servers' delay, wrong.
    requestsPerS: figures.ok / DURATION_S,
  };
}

/** Stops a server. */
async function stop(started: { process: Deno.ChildProcess }): Promise<void> {
  // SIGKILL: `deno serve` stops serving on SIGTERM but stays up while postgres.js keeps its connections open.
  started.process.kill("SIGKILL");
  await started.process.status;
}
