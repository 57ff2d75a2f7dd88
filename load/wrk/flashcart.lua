-- wrk script for flashcart: the report's coupon and order scenarios with random users and products.
--   wrk -t1 -c100 -d60s -s load/wrk/flashcart.lua http://127.0.0.1:3000 -- <coupon|order> <tokens file> <think ms> <products> <coupon id>
-- <tokens file>: one bearer token per line, line N is user N's token (written by load/bench.ts).
-- <think ms>: mean pause after each response (wrk's delay()), 0 for a closed loop at full speed.
-- done() prints one JSON line that load/bench.ts reads.

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
  table.insert(threads, thread)
end

function init(args)
  kind = args[1]
  think = tonumber(args[3]) or 0
  products = tonumber(args[4]) or 100
  coupon_id = args[5] or "1"
  tokens = {}
  for line in io.lines(args[2]) do tokens[#tokens + 1] = line end
  statuses = {}
  math.randomseed(os.time() * 1000 + (thread_id or 0))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local user = math.random(1, #tokens)
  wrk.headers["Authorization"] = "Bearer " .. tokens[user]
  if kind == "coupon" then
    return wrk.format(nil, "/api/coupons/" .. user, nil, '{"couponId":' .. coupon_id .. "}")
  end
  local product = math.random(1, products)
  return wrk.format(nil, "/api/orders", nil,
    '{"userId":' .. user .. ',"items":[{"productId":' .. product .. ',"quantity":1}]}')
end

function response(status)
  statuses[status] = (statuses[status] or 0) + 1
end

-- Think time varies ±50 % around its mean so that connections do not fall into lock-step waves.
function delay()
  if think == 0 then return 0 end
  return math.floor(think * (0.5 + math.random()))
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do parts[#parts + 1] = string.format('"%d":%d', status, n) end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"durationUs":%d,"latencyUs":{"p50":%d,"p95":%d,"p99":%d,"max":%d,"mean":%.1f},' ..
    '"statuses":{%s},"socketErrors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean, table.concat(parts, ","), e.connect, e.read, e.write, e.timeout))
end
