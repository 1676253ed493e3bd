-- wrk script for bench/run.sh: the OAuth token endpoint. Every request is a
-- client_credentials grant (RFC 6749 §4.4) authenticated with HTTP Basic
-- (client_secret_basic), so each one verifies the client secret and signs a
-- fresh ES256 access token. The client id and secret come from the
-- environment (BENCH_CLIENT_ID, BENCH_CLIENT_SECRET) so that they never
-- appear on a command line or in output.
local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1)
      .. (b and b64chars:sub(c3 + 1, c3 + 1) or "=")
      .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

-- RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic; keygate
-- ids and secrets are [A-Za-z0-9_] only, so that changes nothing here.
local id = os.getenv("BENCH_CLIENT_ID") or ""
local secret = os.getenv("BENCH_CLIENT_SECRET") or ""

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
if id ~= "" and secret ~= "" then
  wrk.headers["Authorization"] = "Basic " .. base64(id .. ":" .. secret)
end
wrk.body = "grant_type=client_credentials&scope=chat"

-- The same parseable line as bench/load.lua.
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
