/**
 * `deno task fault`: stops PostgreSQL under load for a few seconds and starts
 * it again. Every request carries a sequence number as its value; afterwards
 * every 200 must be in datasource_readings, every failure must be a 503 with
 * Retry-After, and the function must serve 200s again without a restart.
 * Prints the counts, saves them to .bench/fault.json, exits 1 on a broken promise.
 *
 * A second phase does it again with clients that retry: each request carries
 * an Idempotency-Key, some connections are cut by the client right after
 * sending (the server may commit without the client hearing of it), and every
 * request whose answer was not a 200 is sent again with the same key until it
 * is. Afterwards every value must be stored exactly once: 0 duplicates, 0 lost,
 * and none left unanswered (a value never answered would go unchecked).
 *
 * Options: --seconds=20 --down-at=5 --down-for=4 --connections=16 --cut=0.1
 */
import { progress, scriptOptions, seedDatasources, startDurablePostgres, startFunction } from "./load.ts";

const { seconds: SECONDS, "down-at": DOWN_AT_S, "down-for": DOWN_FOR_S, connections: CONNECTIONS, cut: CUT } =
  scriptOptions({ seconds: 20, "down-at": 5, "down-for": 4, connections: 16, cut: 0.1 });
/** Values of the retry phase start here, apart from the first phase's. */
const RETRY_BASE = 100_000_000;

interface Outcome {
  seq: number;
  status: number; // 0: no HTTP response
  retryAfter: string | null;
  sentAt: number;
}

const { server, sql } = await startDurablePostgres();
let fn: Deno.ChildProcess | undefined;
try {
  // 100 keys keep each one under the default rate limit (100/s) at this load.
  const keys = await seedDatasources(sql, 100);
  const started = await startFunction(server.url);
  fn = started.process;
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  let seq = 0;
  const outcomes: Outcome[] = [];
  let restartedAt = Infinity;

  const worker = async (): Promise<void> => {
    while (elapsed() < SECONDS) {
      const n = ++seq;
      const key = keys[n % keys.length]!;
      const sentAt = elapsed();
      try {
        const res = await fetch(started.url, {
          method: "POST",
          headers: { "X-API-Key": key.apiKey, "Content-Type": "application/json" },
          body: JSON.stringify({ temperature: n }),
        });
        await res.body?.cancel();
        outcomes.push({ seq: n, status: res.status, retryAfter: res.headers.get("Retry-After"), sentAt });
        if (res.status !== 200) await new Promise((r) => setTimeout(r, 100));
      } catch {
        outcomes.push({ seq: n, status: 0, retryAfter: null, sentAt });
      }
    }
  };

  const fault = async (): Promise<void> => {
    await new Promise((r) => setTimeout(r, DOWN_AT_S * 1000));
    progress("fault", `stopping PostgreSQL at ${elapsed().toFixed(1)}s`);
    await server.stop({ keepFiles: true });
    await new Promise((r) => setTimeout(r, DOWN_FOR_S * 1000));
    await server.start();
    restartedAt = elapsed();
    progress("fault", `PostgreSQL started again at ${restartedAt.toFixed(1)}s`);
  };

  progress(
    "fault",
    `${CONNECTIONS} connections for ${SECONDS}s; PostgreSQL down from ${DOWN_AT_S}s for ${DOWN_FOR_S}s`,
  );
  await Promise.all([fault(), ...Array.from({ length: CONNECTIONS }, worker)]);

  const rows =
    await sql`select (value::text)::bigint as seq from public.datasource_readings where data_key = 'temperature'`;
  const stored = new Set(rows.map((r) => Number(r.seq)));
  const ok = outcomes.filter((o) => o.status === 200);
  const unavailable = outcomes.filter((o) => o.status === 503);
  const lost = ok.filter((o) => !stored.has(o.seq)).length;
  const badFailures = outcomes.filter((o) => o.status !== 200 && !(o.status === 503 && o.retryAfter)).length;
  const storedAfter503 = unavailable.filter((o) => stored.has(o.seq)).length;
  const okAfterRestart = ok.filter((o) => o.sentAt > restartedAt).length;
  const report = {
    requests: outcomes.length,
    ok: ok.length,
    unavailable_503: unavailable.length,
    other_failures: badFailures,
    lost,
    stored_after_503: storedAfter503,
    ok_after_restart: okAfterRestart,
    down_from_s: DOWN_AT_S,
    down_for_s: DOWN_FOR_S,
    at: new Date().toISOString(),
  };
  await Deno.mkdir(new URL("../.bench/", import.meta.url), { recursive: true });
  await Deno.writeTextFile(new URL("../.bench/fault.json", import.meta.url), JSON.stringify(report, null, 2));
  console.log(`\nFault run: PostgreSQL stopped for ${DOWN_FOR_S}s under ${CONNECTIONS} connections`);
  console.log(`  requests: ${report.requests}; 200: ${report.ok}; 503 with Retry-After: ${report.unavailable_503}`);
  console.log(
    `  other failures: ${badFailures}; 200 not stored (lost): ${lost}; 200s after the restart: ${okAfterRestart}`,
  );
  console.log(
    `  503 whose value was stored anyway (commit acknowledged by the server, connection lost): ${storedAfter503}`,
  );
  const perSecond = new Map<number, Record<number, number>>();
  for (const o of outcomes) {
    const second = Math.floor(o.sentAt);
    const counts = perSecond.get(second) ?? {};
    counts[o.status] = (counts[o.status] ?? 0) + 1;
    perSecond.set(second, counts);
  }
  console.log(`  statuses by second sent: ${[...perSecond].map(([s, c]) => `${s}s ${JSON.stringify(c)}`).join(", ")}`);
  const retry = await retryPhase(started.url, keys.map((k) => k.apiKey));
  const passed = lost === 0 && badFailures === 0 && okAfterRestart > 0 && unavailable.length > 0 && retry;
  console.log(passed ? "PASS" : "FAIL");
  if (!passed) Deno.exitCode = 1;
} finally {
  fn?.kill("SIGTERM");
  await fn?.status;
  await sql.end({ timeout: 1 }).catch(() => {});
  await server.stop();
}

/** The retry phase; true when every value acknowledged is stored exactly once. */
async function retryPhase(url: string, apiKeys: string[]): Promise<boolean> {
  const t1 = performance.now();
  const since = () => (performance.now() - t1) / 1000;
  let next = RETRY_BASE;
  const acknowledged = new Set<number>();
  let attempts = 0, cuts = 0, replays = 0, conflicts = 0, unfinished = 0;
  const statuses: Record<number, number> = {};

  const send = async (n: number): Promise<boolean> => {
    attempts++;
    const cut = Math.random() < CUT;
    const controller = new AbortController();
    if (cut) setTimeout(() => controller.abort(), 1 + Math.random() * 10);
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: {
          "X-API-Key": apiKeys[n % apiKeys.length]!,
          "Content-Type": "application/json",
          "Idempotency-Key": `fault-${n}`,
        },
        body: JSON.stringify({ temperature: n }),
        signal: controller.signal,
      });
      await res.body?.cancel();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      if (res.headers.get("Idempotent-Replayed")) replays++;
      if (res.status === 409) conflicts++;
      return res.status === 200;
    } catch {
      if (cut) cuts++;
      return false;
    }
  };

  const worker = async (): Promise<void> => {
    while (since() < SECONDS) {
      const n = ++next;
      // Retry with the same key until the answer is heard (a second after the phase at most).
      while (!(await send(n))) {
        if (since() > SECONDS + 10) {
          unfinished++;
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      acknowledged.add(n);
    }
  };

  const restart = async (): Promise<void> => {
    await new Promise((r) => setTimeout(r, DOWN_AT_S * 1000));
    progress("fault", `retry phase: stopping PostgreSQL at ${since().toFixed(1)}s`);
    await server.stop({ keepFiles: true });
    await new Promise((r) => setTimeout(r, DOWN_FOR_S * 1000));
    await server.start();
    progress("fault", `retry phase: PostgreSQL started again at ${since().toFixed(1)}s`);
  };

  progress("fault", `retry phase: ${CONNECTIONS} clients retrying with Idempotency-Key, ${CUT * 100}% cut`);
  await Promise.all([restart(), ...Array.from({ length: CONNECTIONS }, worker)]);
  const rows = await sql`select (value::text)::bigint as seq, count(*)::int as n from public.datasource_readings
    where data_key = 'temperature' and (value::text)::bigint > ${RETRY_BASE} group by 1`;
  const copies = new Map(rows.map((r) => [Number(r.seq), r.n as number]));
  const duplicates = [...copies.values()].filter((n) => n > 1).length;
  const lostValues = [...acknowledged].filter((n) => !copies.has(n)).length;
  console.log(`\nRetry phase: PostgreSQL stopped for ${DOWN_FOR_S}s; clients cut ${CUT * 100}% of connections`);
  console.log(`  values acknowledged: ${acknowledged.size}; attempts: ${attempts}; connections cut: ${cuts}`);
  console.log(`  statuses heard: ${JSON.stringify(statuses)}; replays: ${replays}; 409 in flight: ${conflicts}`);
  console.log(`  stored twice or more (duplicates): ${duplicates}; acknowledged but not stored (lost): ${lostValues}`);
  console.log(`  still unanswered when the phase ended: ${unfinished}`);
  // A value never answered is neither acknowledged nor checked: the verdict needs none of them.
  return duplicates === 0 && lostValues === 0 && unfinished === 0 && acknowledged.size > 0;
}
