// Send data from Node.js (18 or later) with the built-in fetch.
//
//   INGEST_API_KEY=tw_... node send_node.mjs
//
// INGEST_URL defaults to the local dev server (`deno task dev`); on Supabase it is
// https://<project-ref>.supabase.co/functions/v1/ingest-data
const url = process.env.INGEST_URL ?? "http://127.0.0.1:54321/functions/v1/ingest-data";
const apiKey = process.env.INGEST_API_KEY; // the API key of your datasource
if (!apiKey) throw new Error("set INGEST_API_KEY to the API key of your datasource");

/** POSTs one payload; retries while the answer is 429 or 503 (nothing was stored then). */
async function send(values) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "X-API-Key": apiKey, "Content-Type": "application/json" },
      body: JSON.stringify(values),
    });
    if (response.status === 429 || response.status === 503) {
      const seconds = Number(response.headers.get("Retry-After") ?? 1);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      continue;
    }
    const body = await response.json();
    // message says what to fix; each issue has the path into the payload.
    if (!response.ok) throw new Error(`${response.status} ${body.code}: ${body.message}`);
    return body;
  }
  throw new Error("still rate limited or unavailable after 5 attempts");
}

const result = await send({
  temperature: 42.5,
  motor_stats: { rpm: 1500, vibration: 0.75 },
  production_output: { machines: ["Machine A", "Machine B", "Machine C"], units_per_hour: [112, 124, 98] },
});
console.log(`stored ${result.stored.join(", ")} at ${result.received_at}`);
