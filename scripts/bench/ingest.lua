-- wrk script: the documentation's combined payload, spread over every key in
-- keys.lua (written by scripts/bench.ts), one key after another.
local keys = dofile(os.getenv("BENCH_KEYS_FILE"))
local body = os.getenv("BENCH_BODY")
local counter = 0
local offset = 0

function setup(thread)
  offset = offset + 37
  thread:set("counter", offset)
end

function request()
  counter = counter + 1
  local key = keys[(counter % #keys) + 1]
  return wrk.format("POST", nil, { ["X-API-Key"] = key, ["Content-Type"] = "application/json" }, body)
end
