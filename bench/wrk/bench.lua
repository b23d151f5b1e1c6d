-- The one wrk script of the benchmarks (bench/run.sh). Every scenario goes through request(), so
-- the load generator does the same work per request in all of them, S0 included.
--
-- Environment:
--   BENCH_MODE  get     GET wrk.path, with `Authorization: Bearer <token>` taken in turn from
--                       BENCH_FILE when it is set (one token a line)
--               post    POST wrk.path, one JSON body a line of BENCH_FILE, each used once
--               decrypt POST wrk.path, lines "<token>\t<json body>" taken in turn
--               refresh POST wrk.path {"refresh_token"}: starts from the tokens of BENCH_FILE (more
--                       than the connections: wrk calls request() once before the run), then
--                       uses each token a response hands out; every token is sent once
--   BENCH_CAP   the most requests a thread sends (the count bound; the time bound is wrk's -d)
--   BENCH_OUT   where done() writes its JSON line
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local function now()
  local ts = ffi.new("bench_timespec")
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local mode = os.getenv("BENCH_MODE") or "get"
local file = os.getenv("BENCH_FILE")
if file == "" then file = nil end
local cap = tonumber(os.getenv("BENCH_CAP") or "1000000000")

local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Per thread (running phase).
local requests = {}   -- prebuilt requests (get, post, decrypt)
local queue = {}      -- refresh tokens not yet used (refresh)
local head, tail = 1, 0
local next_index = 1
local count = 0       -- #requests, taken once: post mode empties the table from the front
sent = 0              -- requests handed to wrk (the first one only to check the script)
local filler          -- sent after stopping: no state changes, never counted
t0 = 0
t_stop = -1
exhausted = false
capped = false
bad_bodies = 0

local function lines(path)
  local out = {}
  for line in io.lines(path) do
    if line ~= "" then table.insert(out, line) end
  end
  return out
end

function init(args)
  filler = wrk.format("GET", "/healthz", {}, nil)
  local json = { ["Content-Type"] = "application/json" }
  if mode == "get" then
    if file then
      for _, token in ipairs(lines(file)) do
        table.insert(requests, wrk.format("GET", wrk.path, { Authorization = "Bearer " .. token }, nil))
      end
    else
      table.insert(requests, wrk.format("GET", wrk.path, {}, nil))
    end
  elseif mode == "post" then
    -- Each thread takes every n-th line, so that no body is sent twice.
    local all = lines(file)
    local n = tonumber(os.getenv("BENCH_THREADS") or "1")
    for i = id + 1, #all, n do
      table.insert(requests, wrk.format("POST", wrk.path, json, all[i]))
    end
  elseif mode == "decrypt" then
    for _, line in ipairs(lines(file)) do
      local token, body = line:match("^([^\t]+)\t(.+)$")
      local headers = { ["Content-Type"] = "application/json", Authorization = "Bearer " .. token }
      table.insert(requests, wrk.format("POST", wrk.path, headers, body))
    end
  elseif mode == "refresh" then
    local all = lines(file)
    local n = tonumber(os.getenv("BENCH_THREADS") or "1")
    for i = id + 1, #all, n do
      tail = tail + 1
      queue[tail] = all[i]
    end
  else
    error("unknown BENCH_MODE " .. mode)
  end
  count = #requests
  t0 = now()
end

local function stop(reason)
  if t_stop < 0 then
    t_stop = now()
    if reason == "cap" then capped = true else exhausted = true end
    wrk.thread:stop()
  end
  return filler
end

function request()
  if t_stop >= 0 then return filler end
  if sent >= cap then return stop("cap") end
  if mode == "refresh" then
    if head > tail then return stop("exhausted") end
    sent = sent + 1
    local token = queue[head]
    queue[head] = nil
    head = head + 1
    return wrk.format("POST", wrk.path, { ["Content-Type"] = "application/json" },
      '{"refresh_token":"' .. token .. '"}')
  elseif mode == "post" then
    if next_index > count then return stop("exhausted") end
    sent = sent + 1
    local r = requests[next_index]
    requests[next_index] = nil
    next_index = next_index + 1
    return r
  else
    sent = sent + 1
    local r = requests[next_index]
    next_index = next_index % count + 1
    return r
  end
end

if mode == "refresh" then
  function response(status, headers, body)
    local token = body and body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if status == 200 and token then
      tail = tail + 1
      queue[tail] = token
    elseif status == 200 then
      bad_bodies = bad_bodies + 1
    end
  end
end

function done(summary, latency, reqs)
  local all_stopped = #threads > 0
  local first, last = math.huge, 0
  local any_exhausted, any_capped, bad, sent_all = false, false, 0, 0
  for _, thread in ipairs(threads) do
    local ts = thread:get("t_stop")
    local start = thread:get("t0")
    if start and start > 0 and start < first then first = start end
    if not ts or ts < 0 then all_stopped = false elseif ts > last then last = ts end
    if thread:get("exhausted") then any_exhausted = true end
    if thread:get("capped") then any_capped = true end
    bad = bad + (thread:get("bad_bodies") or 0)
    sent_all = sent_all + (thread:get("sent") or 0)
  end
  local seconds = summary.duration / 1e6
  if all_stopped and last > first then seconds = last - first end
  local e = summary.errors
  local out = string.format(
    '{"requests":%d,"seconds":%.6f,"rps":%.3f,"p50_ms":%.4f,"p99_ms":%.4f,"max_ms":%.4f,' ..
    '"non2xx":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,' ..
    '"exhausted":%s,"capped":%s,"bad_bodies":%d,"sent":%d}',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect, e.read, e.write, e.timeout,
    tostring(any_exhausted), tostring(any_capped), bad, sent_all)
  local path = os.getenv("BENCH_OUT")
  if path then
    local f = assert(io.open(path, "w"))
    f:write(out, "\n")
    f:close()
  end
  io.write(out, "\n")
end
