#!/bin/sh
# Send data from a shell script with curl.
#
#   INGEST_API_KEY=tw_... sh send_curl.sh
#
# INGEST_URL defaults to the local dev server (`deno task dev`); on Supabase it is
# https://<project-ref>.supabase.co/functions/v1/ingest-data
set -eu
: "${INGEST_API_KEY:?set INGEST_API_KEY to the API key of your datasource}"
url="${INGEST_URL:-http://127.0.0.1:54321/functions/v1/ingest-data}"

# --fail-with-body: exit non-zero on a 4xx/5xx and still print the error's JSON
# (its "message" says what to fix). --retry waits and retries on 429 and 503,
# honouring Retry-After: nothing was stored when those are answered.
curl --silent --show-error --fail-with-body --retry 3 \
  -X POST "$url" \
  --header "X-API-Key: $INGEST_API_KEY" \
  --header 'Content-Type: application/json' \
  --data-raw '{
  "temperature": 42.5,
  "motor_stats": { "rpm": 1500, "vibration": 0.75 },
  "production_output": { "machines": ["Machine A", "Machine B", "Machine C"], "units_per_hour": [112, 124, 98] }
}'
echo
