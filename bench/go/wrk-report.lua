-- wrk's end-of-run summary as one JSON line, so bench/go/go-bench.ts reads figures instead of scraping text.
-- Only done() is defined: requests are wrk's own (no per-request Lua), so the load generator stays cheap.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
