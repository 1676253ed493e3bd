-- wrk script for bench/run.sh: the same OpenAI chat-completion POST for every
-- target, or (BENCH_FORMAT=anthropic) the same question as an Anthropic
-- Messages POST, which keygate translates for the OpenAI-format upstream.
-- The data-plane key comes from the environment (BENCH_KEY) so that it never
-- appears on a command line or in output.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_KEY")
if os.getenv("BENCH_FORMAT") == "anthropic" then
  wrk.body = '{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"user","content":"hello there"}]}'
  wrk.headers["anthropic-version"] = "2023-06-01"
  if key ~= nil and key ~= "" then
    wrk.headers["x-api-key"] = key
  end
else
  wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}'
  if key ~= nil and key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. key
  end
end

-- One parseable line; latencies in microseconds. err_status counts HTTP
-- responses with status > 399 (wrk's own bookkeeping, no per-response Lua).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f " ..
    "err_connect=%d err_read=%d err_write=%d err_timeout=%d err_status=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.timeout, e.status))
end
