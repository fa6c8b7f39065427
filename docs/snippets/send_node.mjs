// Send data from Node.js (18 or later) with the built-in fetch.
//
//   INGEST_API_KEY=tw_... node send_node.mjs
//
// INGEST_URL defaults to the local dev server (`deno task dev`); on Supabase it is
// https://<project-ref>.supabase.co/functions/v1/ingest-data
import { randomUUID } from "node:crypto";

const url = process.env.INGEST_URL ?? "http://127.0.0.1:54321/functions/v1/ingest-data";
const apiKey = process.env.INGEST_API_KEY; // the API key of your datasource
if (!apiKey) {
  console.error("set INGEST_API_KEY to the API key of your datasource");
  process.exit(1);
}

/** POSTs one payload; retries 429, 503 and lost answers with the same Idempotency-Key (never stored twice). */
async function send(values) {
  const headers = { "X-API-Key": apiKey, "Content-Type": "application/json", "Idempotency-Key": randomUUID() };
  for (let attempt = 0; attempt < 5; attempt++) {
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers,
        body: JSON.stringify(values),
        signal: AbortSignal.timeout(10_000),
      });
    } catch {
      // No answer: it may have been stored; the Idempotency-Key makes the retry safe.
      await new Promise((resolve) => setTimeout(resolve, 2 ** attempt * 1000));
      continue;
    }
    if (response.status === 409 || response.status === 429 || response.status === 503) {
      const seconds = Number(response.headers.get("Retry-After") ?? 1);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      continue;
    }
    const body = await response.json();
    // message says what to fix; each issue has the path into the payload.
    if (!response.ok) throw new Error(`${response.status} ${body.code}: ${body.message}`);
    return body;
  }
  throw new Error("no answer, or still rate limited or unavailable, after 5 attempts");
}

const result = await send({
  temperature: 42.5,
  motor_stats: { rpm: 1500, vibration: 0.75 },
  production_output: { machines: ["Machine A", "Machine B", "Machine C"], units_per_hour: [112, 124, 98] },
});
console.log(`stored ${result.stored.join(", ")} at ${result.received_at}`);
