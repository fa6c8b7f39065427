/**
 * The least an HTTP request can cost, for `deno task bench:floor`: a Deno.serve
 * module doing only part of what the ingest-data function does, chosen by
 * FLOOR_MODE. `http`: read the body, parse it, answer. `select`: also one
 * `select 1` round trip. `insert`: also insert the body as one row, in a
 * transaction of its own (a durable commit per request). `batched`: the same
 * row, but the requests that arrive while a write is in flight share the next
 * one (the function's group commit, reduced to its principle). With
 * FLOOR_DELAY_MS, each request is answered no sooner than that after it
 * arrived (its work done, the rest of the time waited), so that the server
 * answers at a chosen rate. The database
 * connection is set up as the function's store sets it up (postgres.js, no
 * prepared statements, as behind Supabase's pooler).
 */
import postgres from "postgres";

const MODE = Deno.env.get("FLOOR_MODE") ?? "http";
const DELAY_MS = Number(Deno.env.get("FLOOR_DELAY_MS") ?? 0);
const sql = MODE === "http" ? undefined : postgres(Deno.env.get("DATABASE_URL")!, { max: 16, prepare: false });

/** Requests waiting for the next batched write, and whether one is in flight. */
const pending: { body: unknown; done: () => void; failed: (e: unknown) => void }[] = [];
let writing = false;

/** Answers a request after the work of FLOOR_MODE, and no sooner than FLOOR_DELAY_MS after it arrived. */
async function handle(request: Request): Promise<Response> {
  const arrived = performance.now();
  const payload = await request.json();
  if (MODE === "select") await sql!`select 1`;
  if (MODE === "insert") await sql!`insert into public.bench_floor (body) values (${sql!.json(payload)})`;
  if (MODE === "batched") await insertBatched(payload);
  const left = DELAY_MS - (performance.now() - arrived);
  if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
  return Response.json({ stored: true });
}

/** Resolves once `body` is committed, in one insert with the others waiting at that moment. */
function insertBatched(body: unknown): Promise<void> {
  return new Promise((done, failed) => {
    pending.push({ body, done, failed });
    if (!writing) void writeBatches();
  });
}

/** Writes what is pending, one insert at a time, until nothing is. */
async function writeBatches(): Promise<void> {
  writing = true;
  while (pending.length > 0) {
    const batch = pending.splice(0);
    try {
      await sql!`insert into public.bench_floor (body) select * from jsonb_array_elements(${
        sql!.json(batch.map((b) => b.body) as postgres.JSONValue)
      })`;
      for (const b of batch) b.done();
    } catch (e) {
      for (const b of batch) b.failed(e);
    }
  }
  writing = false;
}

export default { fetch: handle } satisfies Deno.ServeDefaultExport;
