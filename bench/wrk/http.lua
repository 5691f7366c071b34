-- The suite's wrk script (bench/src/bin/suite/http.rs runs `wrk -s` with it).
--
-- `wrk ... -s http.lua URL -- DEPTH`: with DEPTH > 1, every write is DEPTH copies of
-- the GET request in one buffer (HTTP/1.1 pipelining, as TechEmpower's
-- pipeline.lua); without it wrk sends its own single static request, unchanged.
-- At the end, one line `WRK_JSON {...}` with wrk's own totals, unrounded (the
-- figures `--latency` prints rounded): requests, duration, bytes, error counts and
-- latency percentiles in microseconds.

init = function(args)
   local depth = tonumber(args[1]) or 1
   if depth > 1 then
      local r = {}
      for i = 1, depth do
         r[i] = wrk.format()
      end
      local batch = table.concat(r)
      -- Defined here, after wrk has read the script: wrk checks for `request`
      -- after init, and a script without one keeps wrk's static request.
      request = function()
         return batch
      end
   end
end

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
      '"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"max_us":%.1f,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
