/**
 * `deno task soak`: 10 minutes at 64 connections. Passes when there is no
 * error, every 200 is stored, and the function's resident memory at the end
 * is within 10% of its value after warm-up. Prints the figures, saves them to
 * .bench/soak.json, exits 1 on a broken promise.
 *
 * Options: --minutes=10 --connections=64 --warmup=30 (seconds) --datasources=100
 */
import {
  progress,
  readingsCount,
  requireTool,
  residentMiB,
  round,
  scriptOptions,
  seedDatasources,
  startDurablePostgres,
  startFunction,
  wrk,
} from "./load.ts";

const { minutes: MINUTES, connections: CONNECTIONS, warmup: WARMUP_S, datasources: DATASOURCES } = scriptOptions({
  minutes: 10,
  connections: 64,
  warmup: 30,
  datasources: 100,
});

await requireTool("wrk", "wrk");
const { server, sql } = await startDurablePostgres();
let fn: Deno.ChildProcess | undefined;
try {
  const keys = await seedDatasources(sql, DATASOURCES);
  const started = await startFunction(server.url);
  fn = started.process;
  progress("soak", `warming up: ${WARMUP_S}s at ${CONNECTIONS} connections`);
  const warmup = await wrk(started.url, { keys, connections: CONNECTIONS, durationS: WARMUP_S });
  const rssAfterWarmup = residentMiB(fn.pid);
  progress("soak", `resident memory after warm-up: ${rssAfterWarmup} MiB; soaking for ${MINUTES} min`);

  const before = await readingsCount(sql);
  const minutes: { minute: number; requests_per_s: number; p99_ms: number; errors: number; rss_mib: number }[] = [];
  let ok = 0;
  for (let minute = 1; minute <= MINUTES; minute++) {
    const figures = await wrk(started.url, { keys, connections: CONNECTIONS, durationS: 60 });
    ok += figures.ok;
    minutes.push({
      minute,
      requests_per_s: figures.requests_per_s,
      p99_ms: figures.p99_ms,
      errors: figures.non_2xx,
      rss_mib: residentMiB(fn.pid),
    });
    progress(
      "soak",
      `minute ${minute}: ${figures.requests_per_s} req/s, p99 ${figures.p99_ms} ms, ${figures.non_2xx} errors, RSS ${
        residentMiB(fn.pid)
      } MiB`,
    );
  }
  await new Promise((r) => setTimeout(r, 500));
  const stored = (await readingsCount(sql) - before) / 3;
  const rssAtEnd = residentMiB(fn.pid);
  const errors = minutes.reduce((n, m) => n + m.errors, 0) + warmup.non_2xx;
  const growth = round((rssAtEnd / rssAfterWarmup - 1) * 100);
  const lost = Math.max(0, ok - stored);
  const report = {
    minutes: MINUTES,
    connections: CONNECTIONS,
    ok,
    errors,
    lost,
    rss_after_warmup_mib: rssAfterWarmup,
    rss_at_end_mib: rssAtEnd,
    rss_growth_percent: growth,
    per_minute: minutes,
    at: new Date().toISOString(),
  };
  await Deno.mkdir(new URL("../.bench/", import.meta.url), { recursive: true });
  await Deno.writeTextFile(new URL("../.bench/soak.json", import.meta.url), JSON.stringify(report, null, 2));
  console.log(`\nSoak: ${MINUTES} min at ${CONNECTIONS} connections`);
  console.log(`  requests ok: ${ok}, errors: ${errors}, lost (200 not stored): ${lost}`);
  console.log(
    `  resident memory: ${rssAfterWarmup} MiB after warm-up, ${rssAtEnd} MiB at the end (${
      growth >= 0 ? "+" : ""
    }${growth}%)`,
  );
  const passed = errors === 0 && lost === 0 && Math.abs(growth) <= 10;
  console.log(passed ? "PASS" : "FAIL");
  if (!passed) Deno.exitCode = 1;
} finally {
  fn?.kill("SIGTERM");
  await fn?.status;
  await sql.end();
  await server.stop();
}
