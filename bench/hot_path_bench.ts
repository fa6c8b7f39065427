/**
 * Micro-benchmarks of the per-request work in the function (`deno task bench:micro`).
 * The store here is an in-memory stand-in so that only the cache is measured.
 */
import { hashApiKey } from "../supabase/functions/ingest-data/api_key.ts";
import { createKeyResolver } from "../supabase/functions/ingest-data/key_resolver.ts";
import { buildPayloadValidator } from "../supabase/functions/ingest-data/payload_schema.ts";
import type { ResolvedKey, Store, Widget } from "../supabase/functions/ingest-data/store.ts";
import { DOC_WIDGETS } from "../local/provisioning.ts";

const widgets = DOC_WIDGETS.map((w, i) => ({ ...w, id: String(i) })) as unknown as Widget[];
const resolved: ResolvedKey = {
  key_id: "k",
  scopes: ["ingest:write"],
  expires_at: null,
  revoked: false,
  datasource_id: "d",
  datasource_name: "Line 1",
  enabled: true,
  config_version: 1,
  widgets,
};
const inMemoryStore: Store = {
  resolveKey: () => Promise.resolve(resolved),
  write: () => Promise.reject(new Error("not used")),
  usage: () => Promise.reject(new Error("not used")),
  flushBroadcasts: () => Promise.reject(new Error("not used")),
  close: () => Promise.resolve(),
};
const resolve = createKeyResolver(inMemoryStore, { ttlMs: 3_600_000, negativeTtlMs: 5_000 });
const key = "tw_" + "0123456789abcdef".repeat(4);
const hash = hashApiKey(key);
await resolve(hash);

const validator = buildPayloadValidator(widgets);
const body = JSON.stringify({
  temperature: 42.5,
  motor_stats: { rpm: 1500, vibration: 0.75 },
  production_output: { machines: ["Machine A", "Machine B", "Machine C"], units_per_hour: [112, 124, 98] },
});

Deno.bench("key resolution, cache hit", { group: "key", baseline: true }, async () => {
  await resolve(hash);
});

Deno.bench("SHA-256 of the key (node:crypto)", { group: "key" }, () => {
  hashApiKey(key);
});

Deno.bench("SHA-256 of the key (crypto.subtle)", { group: "key" }, async () => {
  await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
});

Deno.bench("JSON.parse of the combined payload", { group: "payload", baseline: true }, () => {
  JSON.parse(body);
});

Deno.bench("JSON.parse + validation of the combined payload (hand-written check)", { group: "payload" }, () => {
  validator.validate(JSON.parse(body));
});

Deno.bench("JSON.parse + zod safeParse of the combined payload (what a 400 costs)", { group: "payload" }, () => {
  validator.schema.safeParse(JSON.parse(body));
});

Deno.bench("validator build (once per datasource config version)", { group: "build" }, () => {
  buildPayloadValidator(widgets);
});
