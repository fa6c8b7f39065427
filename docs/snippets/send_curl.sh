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

# One Idempotency-Key per payload, the same for every retry of it: a retry of a
# request whose answer was lost gets the first answer again, never a second copy.
idempotency_key=$(cat /proc/sys/kernel/random/uuid 2>/dev/null || uuidgen)

# --fail-with-body: exit non-zero on a 4xx/5xx and still print the error's JSON
# (its "message" says what to fix); --write-out ends the answer, 200 or error,
# with a newline. --retry retries timeouts, 429, 500 and 503 (waiting
# Retry-After seconds when given): safe with the Idempotency-Key.
curl --silent --show-error --fail-with-body --write-out '\n' --retry 3 \
  -X POST "$url" \
  --header "X-API-Key: $INGEST_API_KEY" \
  --header "Idempotency-Key: $idempotency_key" \
  --header 'Content-Type: application/json' \
  --data-raw '{
  "temperature": 42.5,
  "motor_stats": { "rpm": 1500, "vibration": 0.75 },
  "production_output": { "machines": ["Machine A", "Machine B", "Machine C"], "units_per_hour": [112, 124, 98] }
}'
