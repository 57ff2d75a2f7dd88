-- The machine's ceiling: the same JSON summary as flashcart.lua, for a bare hello-world server.
--   wrk ... -s load/wrk/hello.lua http://127.0.0.1:PORT/ [-- <think ms>]
-- <think ms>: as in flashcart.lua; with it, the latency floor at a paced scenario's rate.
function init(args)
  think = tonumber(args[1]) or 0
end

function delay()
  if think == 0 then return 0 end
  return math.floor(think * (0.5 + math.random()))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"durationUs":%d,"latencyUs":{"p50":%d,"p95":%d,"p99":%d,"max":%d,"mean":%.1f},' ..
    '"statuses":{"200":%d},"socketErrors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean, summary.requests - e.status, e.connect, e.read, e.write, e.timeout))
end
