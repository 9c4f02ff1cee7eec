-- wrk script for bench/run.py: one scenario per wrk run.
--
--   wrk -t T -c C -d Ds --latency -s bench/scenario.lua http://127.0.0.1:PORT -- <config.lua>
--
-- <config.lua> is written by run.py and returns a table:
--   { mode = "expense" | "settlement" | "balances", tag = "<unique per run>",
--     groups = { { id = "...", members = { {id = "...", token = "..."}, ... } }, ... },
--     pairs  = { { group = "...", from = "...", to = "...", token = "..." }, ... } }  -- settlement only
-- Results (JSON) go to the file named by the environment variable BENCH_WRK_OUT.

-- Globals (not locals) where the main state reads them back with thread:get / sets them with thread:set.
tid = 0
statuses = {}
sample = ""
local cfg, n, static = nil, 0, nil
local amounts = { "12.34", "7.50", "31.00", "4.99", "18.21", "9.03", "60.00", "2.47" }

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
  table.insert(threads, thread)
end

function init(args)
  cfg = dofile(args[1])
  n = (tid - 1) * 7919 -- threads start at different groups / members
  if cfg.mode == "balances" then
    static = {}
    for _, g in ipairs(cfg.groups) do
      for _, m in ipairs(g.members) do
        table.insert(static, wrk.format("GET", "/v1/groups/" .. g.id .. "/balances",
          { ["Authorization"] = "Bearer " .. m.token }))
      end
    end
  end
end

local function expense()
  local groups = cfg.groups
  local g = groups[(n % #groups) + 1]
  local round = math.floor(n / #groups)
  local k = #g.members
  local payer = g.members[(round % k) + 1]
  local parts = {}
  for j = 1, k do
    local m = g.members[j]
    if m.id ~= payer.id and #parts < 3 then
      table.insert(parts, '{"user_id":"' .. m.id .. '"}')
    end
  end
  local body = '{"description":"bench","amount":"' .. amounts[(n % #amounts) + 1] ..
    '","currency":"USD","paid_by":"' .. payer.id .. '","split_type":"equal","participants":[' ..
    table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/v1/groups/" .. g.id .. "/expenses", {
    ["Authorization"] = "Bearer " .. payer.token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = cfg.tag .. "-" .. tid .. "-" .. n,
  }, body)
end

local function settlement()
  local p = cfg.pairs[(n % #cfg.pairs) + 1]
  local body = '{"from_user_id":"' .. p.from .. '","to_user_id":"' .. p.to .. '","amount":"0.01","note":"bench"}'
  return wrk.format("POST", "/v1/groups/" .. p.group .. "/settlements", {
    ["Authorization"] = "Bearer " .. p.token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = cfg.tag .. "-" .. tid .. "-" .. n,
  }, body)
end

function request()
  n = n + 1
  if cfg.mode == "expense" then
    return expense()
  elseif cfg.mode == "settlement" then
    return settlement()
  else
    return static[(n % #static) + 1]
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if (status < 200 or status > 299) and sample == "" then
    sample = tostring(status) .. " " .. string.sub(body or "", 1, 300)
  end
end

local function jstr(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
  local counts, samples = {}, {}
  for _, t in ipairs(threads) do
    local st = t:get("statuses") or {}
    for code, c in pairs(st) do counts[code] = (counts[code] or 0) + c end
    local s = t:get("sample")
    if s and s ~= "" then table.insert(samples, jstr(s)) end
  end
  local parts = {}
  for code, c in pairs(counts) do table.insert(parts, '"' .. code .. '":' .. c) end
  local e = summary.errors
  local out = string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"status_over_399":%d,' ..
    '"statuses":{%s},"samples":[%s]}',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.timeout, e.status,
    table.concat(parts, ","), table.concat(samples, ","))
  local f = assert(io.open(os.getenv("BENCH_WRK_OUT"), "w"))
  f:write(out)
  f:close()
end
