"""Send data from Python with requests (pip install requests, or apt install python3-requests).

    INGEST_API_KEY=tw_... python3 send_python.py

INGEST_URL defaults to the local dev server (`deno task dev`); on Supabase it is
https://<project-ref>.supabase.co/functions/v1/ingest-data
"""
import os
import sys
import time
import uuid

import requests

URL = os.environ.get("INGEST_URL", "http://127.0.0.1:54321/functions/v1/ingest-data")
API_KEY = os.environ.get("INGEST_API_KEY")  # the API key of your datasource
if not API_KEY:
    sys.exit("set INGEST_API_KEY to the API key of your datasource")  # to stderr, exit status 1


def send(values: dict) -> dict:
    """POSTs one payload; retries 429, 503 and lost answers with the same Idempotency-Key (never stored twice)."""
    headers = {"X-API-Key": API_KEY, "Idempotency-Key": str(uuid.uuid4())}
    for attempt in range(5):
        try:
            # json= sends a JSON body with Content-Type: application/json (data= would send a form).
            response = requests.post(URL, json=values, headers=headers, timeout=10)
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(2**attempt)  # no answer: it may have been stored; the key makes the retry safe
            continue
        if response.status_code in (409, 429, 503):
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        body = response.json()
        if response.status_code != 200:
            # message says what to fix; each issue has the path into the payload.
            raise RuntimeError(f"{response.status_code} {body['code']}: {body['message']}")
        return body
    raise RuntimeError("no answer, or still rate limited or unavailable, after 5 attempts")


if __name__ == "__main__":
    result = send({
        "temperature": 42.5,
        "motor_stats": {"rpm": 1500, "vibration": 0.75},
        "production_output": {"machines": ["Machine A", "Machine B", "Machine C"], "units_per_hour": [112, 124, 98]},
    })
    print("stored", ", ".join(result["stored"]), "at", result["received_at"])
    sys.exit(0)
