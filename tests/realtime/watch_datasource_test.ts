/**
 * The subscriber path end to end with the real supabase-js 2.119: devices
 * POST to the function, the database broadcasts, the Realtime stand-in
 * delivers, and watchDatasource shows the values.
 */
import assert from "node:assert/strict";
import type { SupabaseClient } from "@supabase/supabase-js";
import { type LatestValue, watchDatasource, type WatchStatus } from "../../clients/watch_datasource.ts";
import { createTestDatabase } from "../support/database.ts";
import { postRequest } from "../support/function.ts";
import { asRole, createKey, createUsers, seedWorkspace } from "../support/seed.ts";
import { createDatasource, createWorkspace } from "../../local/provisioning.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

/** Records a watch's callbacks and waits for conditions on them. */
function recorder() {
  const values: { values: Readonly<Record<string, LatestValue>>; changed: string[]; at: number }[] = [];
  const statuses: { status: WatchStatus; detail?: string }[] = [];
  const waiters: (() => void)[] = [];
  const notify = () => waiters.splice(0).forEach((w) => w());
  return {
    values,
    statuses,
    options: {
      onValues: (v: Readonly<Record<string, LatestValue>>, changed: string[]) => {
        values.push({ values: v, changed, at: performance.now() });
        notify();
      },
      onStatus: (status: WatchStatus, detail?: string) => {
        statuses.push({ status, detail });
        notify();
      },
    },
    /** Resolves when `condition()` holds; fails after `ms`. */
    async until(condition: () => boolean, what: string, ms = 10_000) {
      const deadline = Date.now() + ms;
      while (!condition()) {
        if (Date.now() > deadline) {
          throw new Error(`Timed out waiting for ${what}; statuses: ${JSON.stringify(statuses)}`);
        }
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 100);
        });
      }
    },
    latest: () => values.at(-1)?.values ?? {},
    lastStatus: () => statuses.at(-1)?.status,
  };
}

/** A watch of `datasourceId` as `userId` on a client of its own, once live. */
async function liveWatch(stack: TestStack, userId: string, datasourceId: string) {
  const token = await stack.tokenFor(userId);
  const r = recorder();
  const watch = watchDatasource(stack.client(() => token), datasourceId, r.options);
  await r.until(() => r.lastStatus() === "live", "live");
  return { r, watch };
}

Deno.test("a member sees the current values, then a POSTed value within 1 s with the documented payload", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  assert.equal(await stack.post(s.apiKey, { temperature: 20.5 }), 200);

  const token = await stack.tokenFor(s.viewer);
  const supabase = stack.client(() => token);
  const broadcasts: { payload: Record<string, unknown>; meta?: { id?: string } }[] = [];
  // A raw channel beside the watch (on a client of its own: supabase-js has one channel per topic), to check
  // the payload as Supabase delivers it.
  const other = stack.client(() => token);
  await other.realtime.setAuth();
  const raw = other.channel(`datasource:${s.datasourceId}`, { config: { private: true } })
    .on("broadcast", { event: "values" }, (message) => broadcasts.push(message as never));
  const rawJoined = new Promise<void>((resolve) => raw.subscribe((state) => state === "SUBSCRIBED" && resolve()));

  const r = recorder();
  const watch = watchDatasource(supabase, s.datasourceId, r.options);
  await r.until(() => r.lastStatus() === "live", "live");
  await rawJoined;
  assert.deepEqual(Object.keys(r.latest()), ["temperature"]);
  assert.equal(r.latest().temperature!.value, 20.5);

  const sent = performance.now();
  assert.equal(
    await stack.post(s.apiKey, { temperature: 42.5, motor_stats: { rpm: 1500, vibration: 0.75 } }),
    200,
  );
  await r.until(() => r.latest().temperature?.value === 42.5, "the new value");
  const update = r.values.at(-1)!;
  assert.ok(update.at - sent < 1000, `delivered after ${Math.round(update.at - sent)} ms`);
  assert.deepEqual(update.changed.sort(), ["motor_stats", "temperature"]);
  assert.deepEqual(update.values.motor_stats!.value, { rpm: 1500, vibration: 0.75 });
  assert.match(update.values.temperature!.observed_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.deepEqual(watch.values(), update.values);

  await r.until(() => broadcasts.length === 1, "the raw broadcast");
  const [message] = broadcasts;
  const payload = message!.payload as Record<string, unknown>;
  // observed_at_by_key too when the budget held the commit back and a flush sent it (docs/realtime.md).
  assert.deepEqual(
    Object.keys(payload).filter((k) => k !== "observed_at_by_key").sort(),
    ["datasource_id", "id", "observed_at", "received_at", "values"],
  );
  assert.equal(payload.datasource_id, s.datasourceId);
  assert.equal(message!.meta?.id, payload.id, "meta.id is the message id realtime.send put into the payload");
  assert.deepEqual(payload.values, { temperature: 42.5, motor_stats: { rpm: 1500, vibration: 0.75 } });
  await watch.stop();
  assert.equal(r.lastStatus(), "closed");
});

Deno.test("subscribers of two datasources see only their own", async () => {
  await using db = await createTestDatabase();
  const a = await seedWorkspace(db.sql);
  const b = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  const watchers = await Promise.all([a, b].map((s) => liveWatch(stack, s.viewer, s.datasourceId)));
  assert.equal(await stack.post(a.apiKey, { temperature: 1 }), 200);
  assert.equal(await stack.post(b.apiKey, { temperature: 2, motor_stats: { rpm: 2, vibration: 2 } }), 200);
  const [wa, wb] = watchers;
  await wa!.r.until(() => wa!.r.latest().temperature?.value === 1, "A's value");
  await wb!.r.until(() => wb!.r.latest().temperature?.value === 2, "B's value");
  // A later write to A, delivered after B's: A has seen everything it will be sent about B by then.
  assert.equal(await stack.post(a.apiKey, { temperature: 3 }), 200);
  await wa!.r.until(() => wa!.r.latest().temperature?.value === 3, "A's second value");
  assert.deepEqual(wa!.r.values.flatMap((v) => v.changed), ["temperature", "temperature"]);
  assert.ok(wa!.r.values.every((v) => v.values.temperature?.value !== 2 && !v.values.motor_stats));
  for (const { watch } of watchers) await watch.stop();
});

Deno.test("refused: a non-member, a token without exp, an expired token; nothing is delivered to them", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  const topic = `datasource:${s.datasourceId}`;
  const cases = [
    {
      token: await stack.tokenFor(s.outsider),
      reason: `Unauthorized: You do not have permissions to read from this Channel topic: ${topic}`,
    },
    {
      token: await stack.tokenFor(s.viewer, { expiresIn: null }),
      reason: "InvalidJWTToken: Fields `role` and `exp` are required in JWT",
    },
    {
      token: await stack.tokenFor(s.viewer, { expiresIn: -60 }),
      reason: /^InvalidJWTToken: Token has expired \d+ seconds ago$/,
    },
  ];
  for (const { token, reason } of cases) {
    const r = recorder();
    const watch = watchDatasource(stack.client(() => token), s.datasourceId, r.options);
    await r.until(() => r.lastStatus() === "error", "the refusal");
    const detail = r.statuses.at(-1)!.detail!;
    if (typeof reason === "string") assert.equal(detail, reason);
    else assert.match(detail, reason);
    assert.equal(await stack.post(s.apiKey, { temperature: Math.random() }), 200);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(r.values, [], "no values reach a refused subscriber");
    await watch.stop();
  }
});

Deno.test("a member removed from the workspace is closed at the next token refresh", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  let token = await stack.tokenFor(s.viewer);
  const supabase = stack.client(() => token);
  const r = recorder();
  const watch = watchDatasource(supabase, s.datasourceId, r.options);
  await r.until(() => r.lastStatus() === "live", "live");

  await db.sql`delete from public.workspace_members where workspace_id = ${s.workspaceId} and user_id = ${s.viewer}`;
  // A new token is checked again (the stand-in also checks the same token again; Supabase skips it).
  await supabase.realtime.setAuth();
  token = await stack.tokenFor(s.viewer, { expiresIn: 7200 });
  await supabase.realtime.setAuth();
  await r.until(() => r.lastStatus() === "closed", "the channel closed");
  assert.equal(
    r.statuses.at(-1)!.detail,
    `You no longer have permission to read from this Channel topic: datasource:${s.datasourceId}`,
  );
  assert.equal(await stack.post(s.apiKey, { temperature: 99 }), 200);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.ok(r.values.every((v) => v.values.temperature?.value !== 99));
  await watch.stop();
});

Deno.test("supabase-js overrides a bare setAuth(token) with its own token (why the accessToken option)", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  const { createClient } = await import("@supabase/supabase-js");
  const supabase = createClient(stack.url, stack.anonKey);
  await supabase.realtime.setAuth(await stack.tokenFor(s.viewer));
  const states: string[] = [];
  let refusal: string | undefined;
  supabase.channel(`datasource:${s.datasourceId}`, { config: { private: true } })
    .subscribe((state, error) => {
      states.push(state);
      const cause = error?.cause as { reason?: string; code?: number } | undefined;
      if (cause?.reason && cause.code === undefined) refusal = cause.reason;
    });
  const r = recorder();
  await r.until(() => states.includes("SUBSCRIBED"), "the first join (it went out with the manual token)");
  // Connecting replaced the manual token with the accessToken callback's answer (no session: the anon key),
  // so the rejoin after a drop goes out with the anon key and is refused.
  await r.until(() => supabase.realtime.accessTokenValue === stack.anonKey, "the anon key in place of the token");
  stack.standIns.realtime.dropConnections();
  await r.until(() => refusal !== undefined, "the refused rejoin");
  assert.equal(
    refusal,
    `Unauthorized: You do not have permissions to read from this Channel topic: datasource:${s.datasourceId}`,
  );
  assert.equal(states[0], "SUBSCRIBED");
  await supabase.removeAllChannels();
});

Deno.test("values posted while the socket was down are shown after it reconnects", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  const { r, watch } = await liveWatch(stack, s.viewer, s.datasourceId);

  await stack.stop();
  await r.until(() => r.lastStatus() === "reconnecting", "reconnecting");
  const res = await stack.fn.handle(
    postRequest({ temperature: 7, motor_stats: { rpm: 7, vibration: 7 } }, { key: s.apiKey }),
  );
  assert.equal(res.status, 200);
  await res.body?.cancel();
  await stack.restart();
  await r.until(
    () => r.lastStatus() === "live" && r.latest().temperature?.value === 7,
    "the values after reconnecting",
  );
  assert.deepEqual(r.latest().motor_stats?.value, { rpm: 7, vibration: 7 });
  const seen = r.statuses.map((x) => x.status);
  assert.deepEqual(seen.slice(0, 3), ["connecting", "live", "reconnecting"]);
  assert.ok(seen.every((x) => x !== "closed" && x !== "error"), seen.join(", "));
  await watch.stop();
});

Deno.test("a rolled-back write sends nothing; the next committed one arrives alone", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  const { r, watch } = await liveWatch(stack, s.viewer, s.datasourceId);

  await assert.rejects(asRole(db.sql, { role: "service_role" }, async (tx) => {
    await tx`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${tx.json({ temperature: 666 })})`;
    throw new Error("roll back");
  }));
  assert.equal(await stack.post(s.apiKey, { temperature: 5 }), 200);
  await r.until(() => r.latest().temperature?.value === 5, "the committed value");
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.deepEqual(r.values.map((v) => v.values.temperature?.value), [undefined, 5]);
  await watch.stop();
});

Deno.test("a group commit of many requests delivers each datasource's latest values", async () => {
  await using db = await createTestDatabase();
  const [user] = await createUsers(db.sql, 1);
  const workspaceId = await createWorkspace(db.sql, "Plant");
  await db
    .sql`insert into public.workspace_members (workspace_id, user_id, role) values (${workspaceId}, ${user!}, 'viewer')`;
  const datasources = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
    const id = await createDatasource(db.sql, workspaceId, { name: `Line ${i}` });
    return { id, key: (await createKey(db.sql, id)).apiKey };
  }));
  await using stack = await startTestStack(db.url);
  const token = await stack.tokenFor(user!);
  const supabase = stack.client(() => token);
  const watchers = datasources.map((d) => {
    const r = recorder();
    return { r, watch: watchDatasource(supabase, d.id, r.options) };
  });
  for (const { r } of watchers) await r.until(() => r.lastStatus() === "live", "live");

  // 8 datasources x 25 requests at once: the store coalesces them into a few ingest_write_batch calls.
  const statuses = await Promise.all(
    datasources.flatMap((d) => Array.from({ length: 25 }, (_, n) => stack.post(d.key, { temperature: n }))),
  );
  assert.ok(statuses.every((status) => status === 200), JSON.stringify(statuses));
  const stored = await db.sql`select datasource_id, value from public.datasource_values where data_key = 'temperature'`;
  const latest = new Map(stored.map((row) => [row.datasource_id as string, row.value as number]));
  for (const [i, d] of datasources.entries()) {
    const { r } = watchers[i]!;
    await r.until(() => r.latest().temperature?.value === latest.get(d.id), `datasource ${i}'s latest value`);
  }
  for (const { watch } of watchers) await watch.stop();
});

Deno.test("a failed first read is reported and retried while the channel stays joined", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  assert.equal(await stack.post(s.apiKey, { temperature: 8 }), 200);
  await db.sql`revoke execute on function public.datasource_latest_values(uuid) from authenticated`;
  const token = await stack.tokenFor(s.viewer);
  const r = recorder();
  const watch = watchDatasource(stack.client(() => token), s.datasourceId, r.options);
  await r.until(() => r.lastStatus() === "error", "the failed read");
  assert.match(r.statuses.at(-1)!.detail!, /^Cannot read the current values: permission denied for function/);
  await db.sql`grant execute on function public.datasource_latest_values(uuid) to authenticated`;
  await r.until(() => r.lastStatus() === "live", "live after the retry");
  assert.equal(r.latest().temperature?.value, 8);
  await watch.stop();
});

Deno.test("an older observation never replaces a newer one", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  assert.equal(await stack.post(s.apiKey, { temperature: 8 }), 200);
  const { r, watch } = await liveWatch(stack, s.viewer, s.datasourceId);
  assert.equal(r.latest().temperature?.value, 8);
  // Broadcasts as the database sends them, one observed before the value shown, then one after it.
  const send = (value: number, age: string) =>
    db.sql`select realtime.send(jsonb_build_object('datasource_id', ${s.datasourceId}::uuid,
      'observed_at', now() - ${age}::interval, 'received_at', now(), 'values', jsonb_build_object('temperature', ${value}::int)),
      'values', ${`datasource:${s.datasourceId}`}, true)`;
  await send(-1, "1 hour");
  await send(9, "0 seconds");
  await r.until(() => r.latest().temperature?.value === 9, "the newer value");
  // The POST's own broadcast may reach the channel after it joined, and be shown before the first read
  // answers (8 twice): what matters is that -1 never was.
  const shown = r.values.map((v) => v.values.temperature?.value).filter((v, i, all) => v !== all[i - 1]);
  assert.deepEqual(shown, [8, 9]);
  await watch.stop();
});

Deno.test("when the stand-in's feed loses its database connection, subscribers reconnect and read again", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  const { r, watch } = await liveWatch(stack, s.viewer, s.datasourceId);
  // Kill the feed's LISTEN connection, and write while it is gone: no notification reaches the stand-in.
  const killed = await db.sql`select pg_terminate_backend(pid) from pg_stat_activity
    where datname = current_database() and query ilike 'listen%'`;
  assert.equal(killed.length, 1);
  assert.equal(await stack.post(s.apiKey, { temperature: 12 }), 200);
  await r.until(() => r.latest().temperature?.value === 12, "the value, read again after the reconnect");
  assert.ok(r.statuses.some((x) => x.status === "reconnecting"));
  await watch.stop();
});

/** The README's ```ts blocks, without their import lines. */
async function readmeSnippets(): Promise<string[]> {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  // The package's snippet (`@twinnoverse/client`) is run by tests/clients/package_test.ts's consumers instead.
  return [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].filter((m) => !m[1]!.includes("@twinnoverse/client"))
    .map((m) => m[1]!.split("\n").filter((line) => !line.startsWith("import ")).join("\n"));
}

/**
 * Runs a README snippet as written, with the `.env` lines' names bound to the
 * stack and `render`/`showStatus` recorded; returns its client.
 */
async function runSnippet(code: string, env: Record<string, string>, record: (what: string, args: unknown[]) => void) {
  const { createClient } = await import("@supabase/supabase-js");
  const names = ["SUPABASE_URL", "SUPABASE_ANON_KEY", "DEMO_ACCESS_TOKEN", "DEMO_DATASOURCE_ID"];
  const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor as new (
    ...args: string[]
  ) => (...args: unknown[]) => Promise<SupabaseClient>;
  const run = new AsyncFunction(
    "createClient",
    "watchDatasource",
    ...names,
    "render",
    "showStatus",
    `${code}\nreturn supabase;`,
  );
  return await run(
    createClient,
    watchDatasource,
    ...names.map((name) => env[name]),
    (...args: unknown[]) => record("render", args),
    (...args: unknown[]) => record("status", args),
  );
}

Deno.test("the README's supabase-js snippets, run as written: each joins at the first attempt and shows a POSTed value", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  // Supabase's own back-off: a refused first join would hold the channel for 5 s.
  await using stack = await startTestStack(db.url, { joinErrorBackoffMs: 5000 });
  const env = {
    SUPABASE_URL: stack.url,
    SUPABASE_ANON_KEY: stack.anonKey,
    DEMO_ACCESS_TOKEN: await stack.tokenFor(s.viewer),
    DEMO_DATASOURCE_ID: s.datasourceId,
  };
  const snippets = await readmeSnippets();
  assert.equal(snippets.length, 2, "the README's watchDatasource and own-channel snippets");
  for (const [i, code] of snippets.entries()) {
    const calls: { what: string; args: unknown[] }[] = [];
    const r = recorder();
    const supabase = await runSnippet(code, env, (what, args) => calls.push({ what, args }));
    try {
      await r.until(() => supabase.getChannels()[0]?.state === "joined", `snippet ${i + 1} joined`);
      const value = 40 + i;
      assert.equal(await stack.post(s.apiKey, { temperature: value }), 200);
      // watchDatasource renders each DataKey's {value, observed_at, received_at}; the own channel the raw values.
      const shown = ({ what, args }: { what: string; args: unknown[] }) => {
        const temperature = (args[0] as Record<string, unknown> | undefined)?.temperature;
        return what === "render" && (temperature === value || (temperature as LatestValue)?.value === value);
      };
      await r.until(() => calls.some(shown), `snippet ${i + 1} rendering ${value}`);
      const statuses = calls.filter((c) => c.what === "status").map((c) => c.args[0]);
      assert.ok(!statuses.includes("CHANNEL_ERROR"), `snippet ${i + 1}: ${JSON.stringify(statuses)}`);
      if (code.includes(".subscribe(")) assert.equal(statuses[0], "SUBSCRIBED");
    } finally {
      await supabase.removeAllChannels();
    }
  }
  // docs/realtime.md's client setup shows the same own-channel snippet.
  const realtime = await Deno.readTextFile(new URL("../../docs/realtime.md", import.meta.url));
  assert.ok(realtime.replace(/^ {2}/gm, "").includes(snippets[1]!.trim()), "docs/realtime.md differs from the README");
});

Deno.test("without await setAuth(), a channel subscribed at once joins with the anon key and is refused (why the README awaits it)", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  const supabase = stack.client(async () => await stack.tokenFor(s.viewer));
  const states: string[] = [];
  supabase.channel(`datasource:${s.datasourceId}`, { config: { private: true } })
    .subscribe((state) => states.push(state));
  const r = recorder();
  await r.until(() => states.includes("SUBSCRIBED"), "the rejoin with the user's token");
  assert.equal(states[0], "CHANNEL_ERROR", JSON.stringify(states));
});
