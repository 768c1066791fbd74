-- wrk script for bench/serve.py: the run's results as one JSON line on stdout, after wrk's
-- own text report, so the benchmark reads exact figures (latencies in microseconds) rather
-- than wrk's rounded text. Used alone for plain GETs; bench/serve_ingest.lua loads it too.
--
--   wrk -t1 -c16 -d5s --latency -s bench/serve_report.lua http://127.0.0.1:8000/healthz

local threads = {}

function setup(thread)
  -- each thread numbered from 0 (serve_ingest.lua splits the devices by it)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local codes, stored = {}, 0
  for _, t in ipairs(threads) do
    -- per-thread status counts, kept by serve_ingest.lua's response() (none otherwise)
    for code, n in pairs(t:get("codes_seen") or {}) do
      codes[code] = (codes[code] or 0) + n
    end
    stored = stored + (t:get("n_stored") or 0)
  end
  local parts = {}
  for code, n in pairs(codes) do
    table.insert(parts, string.format('"%s":%d', code, n))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us":%d,"requests":%d,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"status_codes":{%s},"stored":%d}\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, table.concat(parts, ","), stored))
end
