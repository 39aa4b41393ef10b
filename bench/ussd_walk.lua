-- wrk script for bench/ussd.py: each wrk thread owns one connection and walks fresh USSD
-- sessions through the booking menus, one step per request:
--   home ("") -> specialty ("1") -> doctor ("1*1") -> day ("1*1*1") -> times ("1*1*1*1")
-- Run it with as many threads as connections, because wrk gives a script no connection id and
-- the next step of a session depends on the previous reply.
--
-- Latency is timed here, per request, and the percentiles leave out each connection's first
-- request. wrk opens every connection at the same instant, and a server that is already busy
-- accepts them one loop iteration at a time, so those first requests measure the ramp-up
-- (the slowest one is printed as first_max_us). wrk's own percentiles are not used, because
-- wrk 4 adds synthetic samples for slow requests (its coordinated-omission correction), which
-- turns that one-off ramp-up into most of the p99 of a short run.
--
-- Arguments after "--": <run tag> <check: markers|con> <first phone index>
--   run tag         makes session ids unique across wrk runs
--   markers         a reply counts only when it contains the expected screen's title
--   con             a reply counts when it starts with "CON " (the bare baseline server)
--   first phone     thread n uses fake phone +25470000<first + n - 1>, which must be registered

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")

local function now_us()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
   return tonumber(timespec.tv_sec) * 1000000 + tonumber(timespec.tv_nsec) / 1000
end

local threads = {}
local thread_count = 0

function setup(thread)
   thread_count = thread_count + 1
   thread:set("thread_number", thread_count)
   table.insert(threads, thread)
end

local STEPS = { "", "1", "1*1", "1*1*1", "1*1*1*1" }
local MARKERS = { "MyAfya menu", "Choose a service", "Choose a doctor", "choose a day",
                  "choose a time" }

local function url_encode(value)
   return (string.gsub(value, "[^%w%-_%.~]", function(char)
      return string.format("%%%02X", string.byte(char))
   end))
end

local tag, check, prefix, suffixes
local step = 1
local session_number = 1
local sent_at = 0
mismatches = 0
sessions_completed = 0
first_mismatch = ""
latencies = {}  -- microseconds, one per reply after the connection's first
first_latency = 0

function init(args)
   tag = args[1] or "run"
   check = args[2] or "markers"
   local first_phone = tonumber(args[3] or "0")
   local phone = string.format("+25470000%04d", first_phone + thread_number - 1)
   prefix = "sessionId=" .. url_encode(tag) .. "-" .. thread_number .. "-"
   suffixes = {}
   for index, text in ipairs(STEPS) do
      suffixes[index] = "&serviceCode=" .. url_encode("*384*12345#")
         .. "&phoneNumber=" .. url_encode(phone)
         .. "&networkCode=63902&text=" .. url_encode(text)
   end
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
   sent_at = now_us()
   return wrk.format(nil, nil, nil, prefix .. session_number .. suffixes[step])
end

local function reply_ok(status, body)
   if status ~= 200 or string.sub(body, 1, 4) ~= "CON " then
      return false
   end
   if check == "markers" then
      return string.find(body, MARKERS[step], 1, true) ~= nil
   end
   return true
end

function response(status, headers, body)
   local elapsed = now_us() - sent_at
   if first_latency == 0 then
      first_latency = elapsed
   else
      latencies[#latencies + 1] = elapsed
   end
   if reply_ok(status, body) then
      step = step + 1
      if step > #STEPS then
         sessions_completed = sessions_completed + 1
         session_number = session_number + 1
         step = 1
      end
      return
   end
   mismatches = mismatches + 1
   if first_mismatch == "" then
      first_mismatch = "step " .. step .. " status " .. status .. ": " .. string.sub(body, 1, 120)
   end
   -- Start a fresh session so one bad reply does not repeat for the rest of the run.
   session_number = session_number + 1
   step = 1
end

local function percentile(sorted, fraction)
   if #sorted == 0 then
      return 0
   end
   return sorted[math.max(1, math.ceil(fraction * #sorted))]
end

function done(summary, latency, requests)
   local total_mismatches, total_sessions, example = 0, 0, ""
   local all, first_max = {}, 0
   for _, thread in ipairs(threads) do
      total_mismatches = total_mismatches + thread:get("mismatches")
      total_sessions = total_sessions + thread:get("sessions_completed")
      if example == "" then
         example = thread:get("first_mismatch")
      end
      for _, value in ipairs(thread:get("latencies")) do
         all[#all + 1] = value
      end
      first_max = math.max(first_max, thread:get("first_latency"))
   end
   table.sort(all)
   local errors = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d"
         .. " first_max_us=%d wrk_p99_us=%d connect=%d read=%d write=%d status=%d timeout=%d"
         .. " mismatches=%d sessions=%d\n",
      summary.requests, summary.duration, percentile(all, 0.50), percentile(all, 0.90),
      percentile(all, 0.99), percentile(all, 1.0), first_max, latency:percentile(99),
      errors.connect, errors.read, errors.write, errors.status, errors.timeout,
      total_mismatches, total_sessions))
   if example ~= "" then
      io.write("FIRST_MISMATCH " .. string.gsub(example, "\n", " | ") .. "\n")
   end
end
