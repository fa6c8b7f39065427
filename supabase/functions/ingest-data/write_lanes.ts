/**
 * Group commit's lanes. Each datasource's writes go to one lane; a lane has
 * one call in flight at a time, and the requests that queue meanwhile go
 * together in its next call (see takeBatch). PostgreSQL runs the lanes in
 * parallel. A datasource with writes pending stays in its lane, so that
 * concurrent calls never wait on each other's row locks; one without goes to
 * the lane with the fewest writes pending, so that busy datasources do not
 * crowd each other into one lane.
 *
 * @module
 */
import { readingsPayload, type StoreError, type WriteRequest, type WriteResult } from "./store.ts";

/** A request waiting in its lane, with how its caller is answered. */
export interface PendingWrite {
  request: WriteRequest;
  resolve: (result: WriteResult) => void;
  reject: (error: StoreError) => void;
  /** The request as its write function reads it, serialized once, when it may share a call. */
  json?: string;
}

/** What bounds one call's requests. */
export interface BatchLimits {
  maxBatch: number;
  maxBytes: number;
}

/** Writes one call's requests; resolves (never rejects) to the function that answers them. */
export type RunBatch = (batch: PendingWrite[]) => Promise<() => void>;

/** Most readings in one ingest_write_readings call (one request may bring more, and goes alone). */
const MAX_CALL_READINGS = 10_000;

interface Lane {
  queue: PendingWrite[];
  busy: boolean;
  /** Writes queued or in flight in this lane. */
  pending: number;
  /** Whether the last call passed over the queue's first request, too large to share a call (it goes next). */
  deferred: boolean;
}

/** Creates `count` lanes whose calls `run` makes; returns `(request) => its result`, once its call committed. */
export function createWriteLanes(
  count: number,
  limits: BatchLimits,
  run: RunBatch,
): (request: WriteRequest) => Promise<WriteResult> {
  const lanes = Array.from({ length: count }, (): Lane => ({ queue: [], busy: false, pending: 0, deferred: false }));
  const assigned = new Map<string, { lane: Lane; pending: number }>();

  function enter(datasourceId: string): Lane {
    let entry = assigned.get(datasourceId);
    if (!entry) {
      const lane = lanes.reduce((least, lane) => lane.pending < least.pending ? lane : least);
      entry = { lane, pending: 0 };
      assigned.set(datasourceId, entry);
    }
    entry.pending++;
    entry.lane.pending++;
    return entry.lane;
  }

  function leave(datasourceId: string): void {
    const entry = assigned.get(datasourceId)!;
    entry.lane.pending--;
    if (--entry.pending === 0) assigned.delete(datasourceId);
  }

  function pump(lane: Lane): void {
    if (lane.busy || lane.queue.length === 0) return;
    lane.busy = true;
    const { batch, rest, deferred } = takeBatch(lane.queue, limits, lane.deferred);
    lane.queue = rest;
    lane.deferred = deferred;
    run(batch).then((answer) => {
      for (const { request } of batch) leave(request.datasourceId);
      // The next batch goes to the database before this one's requests are answered.
      lane.busy = false;
      pump(lane);
      answer();
    });
  }

  return function write(request) {
    const lane = enter(request.datasourceId);
    return new Promise<WriteResult>((resolve, reject) => {
      lane.queue.push({ request, resolve, reject });
      pump(lane);
    });
  };
}

/**
 * The next call's requests, taken from a lane's queue in order: of one kind
 * (single payloads for ingest_write_batch, readings for
 * ingest_write_readings), up to `maxBatch` of them, MAX_CALL_READINGS
 * readings and `maxBytes` characters of JSON in all, never two with the same
 * Idempotency-Key (the second waits for the first's answer to be recorded,
 * then replays it). A request that does not fit is passed over, and so is
 * every later request of its datasource, which keeps each datasource's
 * requests in order; those passed over lead the next call. A request larger
 * than `maxBytes` goes alone: passed over once while others can go, so that a
 * run of large requests never holds up the small ones queued behind it, then
 * next. A request with more than MAX_CALL_READINGS readings goes alone.
 */
export function takeBatch(
  queue: PendingWrite[],
  limits: BatchLimits,
  deferred: boolean,
): { batch: PendingWrite[]; rest: PendingWrite[]; deferred: boolean } {
  const head = queue[0]!;
  if (queue.length === 1) return { batch: [head], rest: [], deferred: false };
  const oversized = callJsonLength(head) > limits.maxBytes;
  if (oversized && deferred) return { batch: [head], rest: queue.slice(1), deferred: false };
  const batch: PendingWrite[] = [];
  const rest: PendingWrite[] = [];
  const passedOver = new Set<string>();
  const keys = new Set<string>();
  let bytes = 0;
  let readings = 0;
  for (const pending of queue) {
    const { request } = pending;
    const key = request.idempotency ? `${request.keyId} ${request.idempotency.key}` : undefined;
    const count = request.readings?.length ?? 0;
    const fits = batch.length < limits.maxBatch && !passedOver.has(request.datasourceId) &&
      (batch.length === 0 || (
        (request.readings !== undefined) === (batch[0]!.request.readings !== undefined) &&
        readings + count <= MAX_CALL_READINGS && !(key && keys.has(key))
      )) &&
      bytes + callJsonLength(pending) <= limits.maxBytes;
    if (!fits) {
      rest.push(pending);
      passedOver.add(request.datasourceId);
      continue;
    }
    batch.push(pending);
    if (key) keys.add(key);
    bytes += callJsonLength(pending);
    readings += count;
  }
  if (batch.length === 0) return { batch: [head], rest: queue.slice(1), deferred: false };
  return { batch, rest, deferred: oversized };
}

/** A request as its write function reads it (an ingest_write_batch request, or ingest_write_readings'), serialized once. */
function requestJson(pending: PendingWrite): string {
  const { request } = pending;
  pending.json ??= JSON.stringify(
    request.readings ? readingsPayload(request) : {
      datasource_id: request.datasourceId,
      key_id: request.keyId,
      values: request.values,
      observed_at: request.observedAt ?? null,
      ...(request.idempotency
        ? { idempotency_key: request.idempotency.key, request_hash: request.idempotency.hash }
        : {}),
    },
  );
  return pending.json;
}

/** The characters a request adds to a call's JSON (its separator included). */
function callJsonLength(pending: PendingWrite): number {
  return requestJson(pending).length + 1;
}

/** The JSON array of a call's requests; those `leased` marks are covered by their key's lease (key_leases.ts). */
export function callJson(batch: PendingWrite[], leased?: boolean[]): string {
  const json = batch.map((pending, i) =>
    leased?.[i] ? `{"leased":true,${requestJson(pending).slice(1)}` : requestJson(pending)
  );
  return `[${json.join(",")}]`;
}
