-- wrk script of the redirect benchmark: rotates request paths and client addresses
-- (X-Forwarded-For) and checks every answer is a 302 whose Location matches a Lua pattern.
-- Arguments (after "--"): PATHS_FILE IPS_FILE LOCATION_PATTERN
-- Prints one line "BENCH_RESULT {json}" when done.
-- With MIRRORBITS_BENCH_COUNT_ONLY=1 in the environment, answers are only counted: wrk then
-- neither keeps their headers nor calls Lua for each (its own count of 4xx/5xx answers is
-- reported as other_status), so the load generator costs the same per answer whatever the
-- answer's size. The caller checks the answers another way (bench/redirect/run.py: a
-- verification pass before and after the measurements).

local threads = {}
local next_index = 0

function setup(thread)
  thread:set("thread_index", next_index)
  next_index = next_index + 1
  table.insert(threads, thread)
end

local paths, ips = {}, {}
local pattern = "."
local counter = 0
ok_302 = 0
other_status = 0
bad_location = 0
first_bad = ""

function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  for line in io.lines(args[2]) do ips[#ips + 1] = line end
  pattern = args[3]
  counter = thread_index * 7919
end

function request()
  counter = counter + 1
  local path = paths[(counter % #paths) + 1]
  local ip = ips[((counter * 7) % #ips) + 1]
  return wrk.format("GET", path, {["X-Forwarded-For"] = ip, ["User-Agent"] = "mirrorbits-bench"})
end

local function note(text)
  if first_bad == "" then
    first_bad = string.gsub(string.sub(text, 1, 200), '[^%w%./:%-_ ]', '?')
  end
end

local count_only = os.getenv("MIRRORBITS_BENCH_COUNT_ONLY") == "1"

local function check(status, headers, body)
  if status ~= 302 then
    other_status = other_status + 1
    note("status " .. status)
    return
  end
  local location = headers["Location"] or headers["location"]
  if location ~= nil and string.find(location, pattern) then
    ok_302 = ok_302 + 1
  else
    bad_location = bad_location + 1
    note("location " .. tostring(location))
  end
end

-- wrk keeps each answer's headers and calls Lua only when the script defines `response`.
if not count_only then response = check end

function done(summary, latency, requests)
  local e = summary.errors
  local ok, other, bad, sample = 0, 0, 0, ""
  if count_only then
    ok, other = summary.requests - e.status, e.status
  else
    for _, thread in ipairs(threads) do
      ok = ok + thread:get("ok_302")
      other = other + thread:get("other_status")
      bad = bad + thread:get("bad_location")
      if sample == "" then sample = thread:get("first_bad") end
    end
  end
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_s": %.6f, "ok_302": %d, "other_status": %d, ' ..
    '"bad_location": %d, "first_bad": "%s", "socket_errors": %d, ' ..
    '"latency_ms": {"p50": %.3f, "p90": %.3f, "p99": %.3f, "max": %.3f, "mean": %.3f}}\n',
    summary.requests, summary.duration / 1e6, ok, other, bad, sample,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, latency.mean / 1e3))
end
