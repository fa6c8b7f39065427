-- wrk script: the documentation's combined payload, spread over every key in
-- keys.lua (written by bench/bench.ts), one key after another. Requests are
-- formatted once per key, so that wrk spends its CPU on sending, not on Lua.
local keys = dofile(os.getenv("BENCH_KEYS_FILE"))
local body = os.getenv("BENCH_BODY")
local requests = {}
local counter = 0
local offset = 0

function setup(thread)
  offset = offset + 37
  thread:set("counter", offset)
end

function init(args)
  for i, key in ipairs(keys) do
    requests[i] = wrk.format("POST", nil, { ["X-API-Key"] = key, ["Content-Type"] = "application/json" }, body)
  end
end

function request()
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end
