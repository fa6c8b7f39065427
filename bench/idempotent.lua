-- wrk script: the documentation's combined payload over every key in
-- keys.lua, with a new Idempotency-Key on every request when
-- BENCH_IDEMPOTENCY=1. Both settings format each request as it goes, so that
-- the two phases of bench/gateway_bench.ts cost wrk the same.
local keys = dofile(os.getenv("BENCH_KEYS_FILE"))
local body = os.getenv("BENCH_BODY")
local idempotent = os.getenv("BENCH_IDEMPOTENCY") == "1"
local run = os.getenv("BENCH_RUN") or "0"
-- Globals, not locals: thread:set writes a global of each thread's own Lua
-- state, which request() would not see through a local of the same name (both
-- threads would then send the same keys, and half the requests would replay).
counter = 0
thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("thread_id", thread_id)
  thread:set("counter", thread_id * 37)
end

function request()
  counter = counter + 1
  local headers = { ["X-API-Key"] = keys[(counter % #keys) + 1], ["Content-Type"] = "application/json" }
  if idempotent then headers["Idempotency-Key"] = run .. "-" .. thread_id .. "-" .. counter end
  return wrk.format("POST", nil, headers, body)
end
