-- wrk's end-of-run summary as one JSON line, so the benches read figures instead of scraping text.
-- Requests are wrk's own (no per-request Lua), so the load generator stays cheap, unless PWS_WRK_NONCE_HEADER
-- names a header: each request then carries a value never sent before (a replay-protection plugin's nonce).
local nonceHeader = os.getenv("PWS_WRK_NONCE_HEADER")
if nonceHeader then
  math.randomseed(os.time())
  local prefix = string.format("%d-%d-", os.time(), math.random(1, 1000000000))
  local n = 0
  local headers = {}
  request = function()
    n = n + 1
    headers[nonceHeader] = prefix .. n
    return wrk.format(nil, nil, headers)
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
