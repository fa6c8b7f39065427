/**
 * Limits that hold across every function instance: the database's buckets
 * and quotas, with several function processes on one PostgreSQL (as
 * Supabase's isolates share one), the 429s they answer, what GET /usage
 * says, and the refusals counted for dashboards.
 */
import assert from "node:assert/strict";
import { freePort, waitForPort } from "../../local/net.ts";
import { createTestDatabase } from "../support/database.ts";
import { createTestFunction, ENDPOINT, postRequest } from "../support/function.ts";
import { asRole, createKey, seedWorkspace } from "../support/seed.ts";

/** A function process serving index.ts as deployed, on its own port. */
async function startFunctionProcess(databaseUrl: string, env: Record<string, string>) {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "supabase/functions/ingest-data/index.ts"],
    cwd: new URL("../../", import.meta.url),
    env: { DATABASE_URL: databaseUrl, PORT: String(port), ...env },
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitForPort(port);
  return {
    url: `http://127.0.0.1:${port}/functions/v1/ingest-data`,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** POSTs `{temperature}` with each key over `connections` loops per URL for `seconds`; the statuses seen. */
async function hammer(urls: string[], keys: string[], seconds: number, connections = 4) {
  const statuses = new Map<number, number>();
  const until = performance.now() + seconds * 1000;
  let n = 0;
  const loop = async (url: string, key: string) => {
    while (performance.now() < until) {
      const res = await fetch(url, {
        method: "POST",
        headers: { "X-API-Key": key, "Content-Type": "application/json" },
        body: JSON.stringify({ temperature: n++ }),
      });
      await res.body?.cancel();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    }
  };
  const started = performance.now();
  await Promise.all(
    urls.flatMap((url) => keys.flatMap((key) => Array.from({ length: connections }, () => loop(url, key)))),
  );
  return { statuses, seconds: (performance.now() - started) / 1000 };
}

/**
 * Three function processes hammering one key limited to `rate` requests/s and `burst` with `connections` loops
 * each for 4 s: what they stored, what the limit allows (rate × seconds + burst), and the statuses seen.
 */
async function hammerLimitedKey(rate: number, burst: number, connections: number) {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql, { keepHistory: true });
  await db.sql`update public.datasource_api_keys set rate_limit_per_second = ${rate}, rate_limit_burst = ${burst}
    where id = ${s.keyId}`;
  const processes = await Promise.all([1, 2, 3].map(() => startFunctionProcess(db.url, {})));
  try {
    const { statuses, seconds } = await hammer(processes.map((p) => p.url), [s.apiKey], 4, connections);
    const [row] = await db.sql`select count(*)::int as n from public.datasource_readings`;
    const expected = rate * seconds + burst;
    console.log(
      `3 processes, ${rate}/s, burst ${burst}, ${seconds.toFixed(1)} s: ${row!.n} stored, expected ${
        expected.toFixed(0)
      } (${JSON.stringify(Object.fromEntries(statuses))}); per-instance buckets alone would allow ~${
        (3 * expected).toFixed(0)
      }`,
    );
    assert.equal(statuses.get(200), row!.n, "every 200 is a stored request");
    return { stored: row!.n as number, expected, statuses };
  } finally {
    for (const p of processes) await p[Symbol.asyncDispose]();
  }
}

Deno.test("three function processes on one database: one key limited to R requests/s stores about R × seconds + burst", async () => {
  const { stored, expected } = await hammerLimitedKey(20, 10, 4);
  assert.ok(Math.abs(stored - expected) <= 0.15 * expected, `${stored} stored, expected ${expected.toFixed(0)} ± 15%`);
});

Deno.test("three function processes: a key limit high enough to lend leases still stores about R × seconds + burst", async () => {
  // Leases of 10 (1% of the burst; 0.05 s of the rate is 15): each process takes them while the bucket is full.
  const { stored, expected, statuses } = await hammerLimitedKey(300, 1000, 6);
  assert.ok((statuses.get(429) ?? 0) > 0, "the limit was reached");
  // At most the limit and one lease per process; at least the limit less 15%.
  assert.ok(stored <= expected + 3 * 10, `${stored} stored, at most ${expected.toFixed(0)} and 3 leases of 10`);
  assert.ok(stored >= expected * 0.85, `${stored} stored, expected ${expected.toFixed(0)} - 15%`);
});

Deno.test("three function processes: a workspace's readings per second hold across two keys", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql, { keepHistory: true });
  const second = await createKey(db.sql, s.datasourceId);
  const rate = 30, burst = 15;
  await db.sql`insert into public.workspace_limits (workspace_id, readings_per_second, readings_burst)
    values (${s.workspaceId}, ${rate}, ${burst})`;
  // Key limits off: the workspace's is the only one.
  const env = {
    INGEST_RATE_LIMIT_PER_SECOND: "0",
    INGEST_RATE_LIMIT_READINGS_PER_SECOND: "0",
    INGEST_MAX_READINGS: "10",
  };
  const processes = await Promise.all([1, 2, 3].map(() => startFunctionProcess(db.url, env)));
  try {
    const { statuses, seconds } = await hammer(processes.map((p) => p.url), [s.apiKey, second.apiKey], 4, 2);
    const [row] = await db.sql`select count(*)::int as n from public.datasource_readings`;
    const expected = rate * seconds + burst;
    console.log(
      `workspace limit, 2 keys × 3 processes, ${seconds.toFixed(1)} s: ${row!.n} stored, expected ${
        expected.toFixed(0)
      } (${JSON.stringify(Object.fromEntries(statuses))})`,
    );
    assert.ok(
      Math.abs(row!.n - expected) <= 0.15 * expected,
      `${row!.n} stored, expected ${expected.toFixed(0)} ± 15%`,
    );
    const throttled = await db.sql`select limit_name, sum(refused)::int as n from public.ingest_throttles group by 1`;
    assert.deepEqual(throttled.map((r) => r.limit_name), ["workspace_readings"]);
    assert.equal(throttled[0]!.n, statuses.get(429));
  } finally {
    for (const p of processes) await p[Symbol.asyncDispose]();
  }
});

Deno.test("a daily quota: exactly Q readings stored, then 429 quota_exceeded until the UTC day changes (moved by the database)", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql`insert into public.workspace_limits (workspace_id, readings_per_day) values (${s.workspaceId}, 5)`;
  await using fn = createTestFunction(db.url, { INGEST_RATE_LIMIT_PER_SECOND: "0" });
  const statuses = [];
  for (let i = 0; i < 4; i++) {
    statuses.push((await fn.handle(postRequest({ temperature: i }, { key: s.apiKey }))).status);
  }
  // Two readings when one is left: the request is refused whole.
  const readings = await fn.handle(
    postRequest([
      { observed_at: Date.now() - 2000, values: { temperature: 1 } },
      { observed_at: Date.now() - 1000, values: { temperature: 2 } },
    ], {
      key: s.apiKey,
    }),
  );
  assert.equal(readings.status, 429, await readings.clone().text());
  statuses.push((await fn.handle(postRequest({ temperature: 4 }, { key: s.apiKey }))).status);
  const refused = await fn.handle(postRequest({ temperature: 5 }, { key: s.apiKey }));
  assert.deepEqual(statuses, [200, 200, 200, 200, 200]);
  assert.equal(refused.status, 429);
  const body = await refused.json();
  assert.equal(body.code, "quota_exceeded");
  assert.match(
    body.message,
    /^Quota exceeded: the workspace's readings per day \(UTC\) \(5 readings\) is used up; it resets in \d+ s\. Nothing was stored\.$/,
  );
  const untilMidnight = Math.ceil(
    (Date.UTC(
      new Date().getUTCFullYear(),
      new Date().getUTCMonth(),
      new Date().getUTCDate() + 1,
    ) - Date.now()) / 1000,
  );
  assert.ok(
    Math.abs(Number(refused.headers.get("Retry-After")) - untilMidnight) <= 2,
    refused.headers.get("Retry-After")!,
  );
  assert.equal(refused.headers.get("X-RateLimit-Limit"), "5");
  assert.equal(refused.headers.get("X-RateLimit-Remaining"), "0");
  assert.ok(refused.headers.get("X-Request-Id"));

  const [values] = await db.sql`select value from public.datasource_values where data_key = 'temperature'`;
  assert.equal(values!.value, 4, "the refused requests stored nothing");

  // A new UTC day, as the database sees it: the day's counter belongs to yesterday.
  await db.sql`update public.workspace_usage set day = day - 1`;
  assert.equal((await fn.handle(postRequest({ temperature: 6 }, { key: s.apiKey }))).status, 200);
  const [usage] = await db.sql`select day_readings::int as n from public.workspace_usage`;
  assert.equal(usage!.n, 1);
});

Deno.test("a key over its request limit in the database: 429 rate_limited naming the limit, with X-RateLimit-*; counted per hour", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db
    .sql`update public.datasource_api_keys set rate_limit_per_second = 1, rate_limit_burst = 2 where id = ${s.keyId}`;
  // Two instances: each has its own in-memory bucket, so only the database can refuse the third request.
  await using a = createTestFunction(db.url);
  await using b = createTestFunction(db.url);
  assert.equal((await a.handle(postRequest({ temperature: 1 }, { key: s.apiKey }))).status, 200);
  assert.equal((await b.handle(postRequest({ temperature: 2 }, { key: s.apiKey }))).status, 200);
  const refused = await a.handle(postRequest({ temperature: 3 }, { key: s.apiKey }));
  assert.equal(refused.status, 429);
  const body = await refused.json();
  assert.equal(body.code, "rate_limited");
  assert.equal(
    body.message,
    "Too many requests: over this key's requests per second (1 a second, bursts of 2); retry in 1 s. Nothing was stored.",
  );
  assert.deepEqual(
    ["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining"].map((h) => refused.headers.get(h)),
    ["1", "2", "0"],
  );
  const [throttle] = await db.sql`select limit_name, refused from public.ingest_throttles`;
  assert.deepEqual({ ...throttle }, { limit_name: "key_requests", refused: 1 });

  // Dashboards read the same per workspace (security invoker: a viewer sees it, an outsider nothing).
  const summary = await asRole(
    db.sql,
    { role: "authenticated", userId: s.viewer },
    (tx) => tx`select public.workspace_usage_now(${s.workspaceId}) as r`,
  );
  assert.deepEqual(summary[0]!.r.throttled_last_hour, [{
    datasource_id: s.datasourceId,
    limit: "key_requests",
    refused: 1,
  }]);
  assert.equal(summary[0]!.r.day.readings, 0, "no workspace limit: the workspace's counters are not kept");
  const outsider = await asRole(
    db.sql,
    { role: "authenticated", userId: s.outsider },
    (tx) => tx`select public.workspace_usage_now(${s.workspaceId}) as r`,
  );
  assert.equal(outsider[0]!.r, null);
});

Deno.test("GET /usage: the key's and its workspace's limits and what is left now, as the database counts them", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql`insert into public.workspace_limits (workspace_id, readings_per_day) values (${s.workspaceId}, 100)`;
  await using fn = createTestFunction(db.url, { INGEST_RATE_LIMIT_PER_SECOND: "10", INGEST_RATE_LIMIT_BURST: "20" });
  for (let i = 0; i < 3; i++) {
    assert.equal((await fn.handle(postRequest({ temperature: i }, { key: s.apiKey }))).status, 200);
  }
  for (const path of ["/usage", "/usage/"]) {
    const res = await fn.handle(new Request(`${ENDPOINT}${path}`, { headers: { "X-API-Key": s.apiKey } }));
    assert.equal(res.status, 200, path);
    const usage = await res.json();
    assert.equal(usage.datasource_id, s.datasourceId);
    assert.deepEqual({ ...usage.key.requests, remaining: undefined, reset_s: undefined }, {
      limit: 20,
      per_second: 10,
      remaining: undefined,
      reset_s: undefined,
    });
    assert.ok(
      usage.key.requests.remaining >= 17 && usage.key.requests.remaining <= 20,
      String(usage.key.requests.remaining),
    );
    assert.equal(usage.workspace.day.limit, 100);
    assert.equal(usage.workspace.day.used, 3);
    assert.equal(usage.workspace.day.remaining, 97);
    assert.match(usage.workspace.day.resets_at, /^\d{4}-\d\d-\d\dT00:00:00\.000Z$/);
    assert.equal(usage.workspace.readings, null, "no workspace rate set: none applies");
    assert.equal(usage.throttled_last_hour, 0);
  }
  const unauthenticated = await fn.handle(new Request(`${ENDPOINT}/usage`));
  assert.equal(unauthenticated.status, 401);
  const post = await fn.handle(
    new Request(`${ENDPOINT}/usage`, { method: "POST", headers: { "X-API-Key": s.apiKey } }),
  );
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("Allow"), "GET");
});
