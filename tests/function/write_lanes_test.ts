/**
 * Group commit's batching (write_lanes.ts): which queued requests go together
 * in one call, and that each lane sends one call at a time, in order.
 */
import assert from "node:assert/strict";
import {
  type BatchLimits,
  createWriteLanes,
  type PendingWrite,
  takeBatch,
} from "../../supabase/functions/ingest-data/write_lanes.ts";
import type { WriteRequest, WriteResult } from "../../supabase/functions/ingest-data/store.ts";

const LIMITS: BatchLimits = { maxBatch: 3, maxBytes: 10_000 };

function pending(datasourceId: string, extra: Partial<WriteRequest> = {}): PendingWrite {
  return { request: { datasourceId, keyId: "k", values: { t: 1 }, ...extra }, resolve: () => {}, reject: () => {} };
}

function ids(batch: PendingWrite[]): string[] {
  return batch.map((p) => p.request.datasourceId + (p.request.readings ? "r" : ""));
}

Deno.test("a call takes at most maxBatch requests, the rest lead the next call", () => {
  const queue = ["a", "b", "c", "d"].map((id) => pending(id));
  const { batch, rest } = takeBatch(queue, LIMITS, false);
  assert.deepEqual(ids(batch), ["a", "b", "c"]);
  assert.deepEqual(ids(rest), ["d"]);
});

Deno.test("payloads and readings never share a call, and a datasource passed over keeps its order", () => {
  const reading = { observedAt: "2026-12-05T10:00:00.000Z", values: { t: 1 } };
  const queue = [pending("a"), pending("b", { readings: [reading] }), pending("b"), pending("c")];
  const { batch, rest } = takeBatch(queue, LIMITS, false);
  // b's readings are passed over, so b's later payload waits behind them.
  assert.deepEqual(ids(batch), ["a", "c"]);
  assert.deepEqual(ids(rest), ["br", "b"]);
});

Deno.test("two requests with one Idempotency-Key never share a call", () => {
  const idempotency = { key: "same", hash: "h" };
  const queue = [pending("a", { idempotency }), pending("a", { idempotency })];
  const { batch, rest } = takeBatch(queue, LIMITS, false);
  assert.equal(batch.length, 1);
  assert.equal(rest.length, 1);
});

Deno.test("a request larger than maxBytes is passed over once, then goes alone", () => {
  const big = pending("big", { values: { t: "x".repeat(400) } });
  const small = { maxBatch: 3, maxBytes: 300 };
  const first = takeBatch([big, pending("a"), pending("b")], small, false);
  assert.deepEqual(ids(first.batch), ["a", "b"]);
  assert.equal(first.deferred, true);
  const second = takeBatch([...first.rest, pending("c")], small, first.deferred);
  assert.deepEqual(ids(second.batch), ["big"]);
  assert.deepEqual(ids(second.rest), ["c"]);
});

Deno.test("a lane sends one call at a time; requests queued meanwhile go together in the next", async () => {
  const calls: string[][] = [];
  let release: () => void = () => {};
  const write = createWriteLanes(1, LIMITS, (batch) => {
    calls.push(ids(batch));
    return new Promise((resolve) => {
      release = () =>
        resolve(() => batch.forEach((p) => p.resolve({ observed_at: "t", received_at: "t" } as WriteResult)));
    });
  });
  const answers = [write(pending("a").request), write(pending("b").request), write(pending("c").request)];
  assert.deepEqual(calls, [["a"]]);
  release();
  await answers[0];
  assert.deepEqual(calls, [["a"], ["b", "c"]]);
  release();
  await Promise.all(answers);
});
