-- wrk script for the bench package (bench/load.py): one scenario per wrk run.
--
--   wrk -t T -c C -d Ds --latency -s bench/scenario.lua http://127.0.0.1:PORT -- <config.lua>
--
-- <config.lua> is written by bench/load.py and returns a table:
--   { mode = "<a key of builders below>", tag = "<unique per run>",
--     params = { name = "value", ... },  -- the scenario's params (bench/scenarios.py), for its builder
--     groups = { { id = "...", members = { {id = "...", token = "..."}, ... } }, ... },
--     pairs  = { { group = "...", from = "...", to = "...", token = "..." }, ... } }  -- settlement only
-- Results (JSON) go to the file named by the environment variable BENCH_WRK_OUT.
--
-- A new request shape is a builder function plus its entry in `builders`, and one LoadScenario entry
-- in bench/scenarios.py naming it.

-- Globals (not locals) where the main state reads them back with thread:get / sets them with thread:set.
tid = 0
statuses = {}
sample = ""
local cfg, n, static, build = nil, 0, nil, nil
local amounts = { "12.34", "7.50", "31.00", "4.99", "18.21", "9.03", "60.00", "2.47" }

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
  table.insert(threads, thread)
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
  local rate = ""
  if cfg.params.exchange_rate then
    rate = '","exchange_rate":"' .. cfg.params.exchange_rate
  end
  local body = '{"description":"bench","amount":"' .. amounts[(n % #amounts) + 1] ..
    '","currency":"' .. (cfg.params.currency or "USD") .. rate .. '","paid_by":"' .. payer.id ..
    '","split_type":"equal","participants":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/v1/groups/" .. g.id .. "/expenses", {
    ["Authorization"] = "Bearer " .. payer.token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = cfg.tag .. "-" .. tid .. "-" .. n,
  }, body)
end

-- as expense(), paid by two members: the payer and the next one, half each (the odd cent to the first)
local function expense_two_payers()
  local groups = cfg.groups
  local g = groups[(n % #groups) + 1]
  local round = math.floor(n / #groups)
  local k = #g.members
  local payer = g.members[(round % k) + 1]
  local other = g.members[((round + 1) % k) + 1]
  local amount = amounts[(n % #amounts) + 1]
  local cents = tonumber((amount:gsub("%.", "")))
  local first = cents - math.floor(cents / 2)
  local function money(c) return string.format("%d.%02d", math.floor(c / 100), c % 100) end
  local parts = {}
  for j = 1, math.min(k, 3) do
    table.insert(parts, '{"user_id":"' .. g.members[j].id .. '"}')
  end
  local body = '{"description":"bench","amount":"' .. amount .. '","payers":[{"user_id":"' .. payer.id ..
    '","amount":"' .. money(first) .. '"},{"user_id":"' .. other.id .. '","amount":"' .. money(cents - first) ..
    '"}],"split_type":"equal","participants":[' .. table.concat(parts, ",") .. ']}'
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

-- the same GET requests in turn, formatted once per thread
local function balances()
  if static == nil then
    static = {}
    for _, g in ipairs(cfg.groups) do
      for _, m in ipairs(g.members) do
        table.insert(static, wrk.format("GET", "/v1/groups/" .. g.id .. "/balances",
          { ["Authorization"] = "Bearer " .. m.token }))
      end
    end
  end
  return static[(n % #static) + 1]
end

-- request builders by name (LoadScenario.builder in bench/scenarios.py)
local builders = {
  expense = expense,
  expense_two_payers = expense_two_payers,
  settlement = settlement,
  balances = balances,
}

function init(args)
  cfg = dofile(args[1])
  cfg.params = cfg.params or {}
  build = builders[cfg.mode]
  if build == nil then
    error("scenario.lua: no request builder " .. tostring(cfg.mode))
  end
  n = (tid - 1) * 7919 -- threads start at different groups / members
end

function request()
  n = n + 1
  return build()
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
