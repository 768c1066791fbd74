-- wrk script for bench/serve.py: phones uploading fixes to `parkloop serve`.
--
-- Each request is POST /v1/devices/{device}/events with its device's token and a batch of
-- BATCH fix events (1 fix/s of phone time, so a batch is BATCH seconds), the devices taken
-- round-robin (each wrk thread has its own share of them). Every device moves plausibly:
-- parked (standing, GPS noise only, 10-40 min) -> walks to the car (1-3 min) -> drives
-- (5-20 min at 8-16 m/s, halts at lights, turns) -> walks on (1-8 min) -> parked again, its
-- phone time advancing from T0_MS. Batch ids are TAG-device-n, new on every run with a new
-- TAG.
--
--   wrk -t1 -c64 -d20s --timeout 30s -s bench/serve_ingest.lua http://127.0.0.1:8000 \
--       -- DEVICES_FILE TAG T0_MS RATE NTHREADS [BATCH]
--
-- DEVICES_FILE: one device a line, "device_id token lat lon" (its start position);
-- RATE: requests/s over all threads, 0 for as fast as the server answers. With a rate, each
-- request waits for its slot on an even schedule (per thread, clock_gettime through LuaJIT's
-- FFI), so the rate holds while latency * RATE stays below the connections.
-- Prints the results as one JSON line (serve_report.lua) with every status code counted and
-- the replies that stored their batch ("status":"stored").

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "serve_report.lua")

local M_PER_DEG = 111320.0
local devices, next_device = {}, 1
local tag, interval_s, batch = "run", 0, 100
local next_slot = 0
codes_seen, n_stored = {}, 0

local function uniform(a, b) return a + (b - a) * math.random() end
local function noise_m(scale)  -- roughly normal, mean 0, sd about scale / 2
  return (math.random() + math.random() + math.random() - 1.5) * scale
end

local function next_mode(d)
  -- the phone's day: park -> walk -> drive -> walk -> park
  if d.mode == "park" then
    d.mode, d.left, d.after = "walk", math.random(60, 180), "drive"
  elseif d.mode == "walk" and d.after == "drive" then
    d.mode, d.left, d.target = "drive", math.random(300, 1200), uniform(8, 16)
    d.heading = uniform(0, 2 * math.pi)
  elseif d.mode == "drive" then
    d.mode, d.left, d.after = "walk", math.random(60, 480), "park"  -- on to the door
  else
    d.mode, d.left = "park", math.random(600, 2400)
  end
  if d.mode == "walk" then d.heading = uniform(0, 2 * math.pi) end
end

local function step(d)
  -- one second of the device's life; returns its speed, m/s
  d.left = d.left - 1
  if d.left <= 0 then next_mode(d) end
  local v = 0
  if d.mode == "walk" then
    v = 1.3 + noise_m(0.3)
  elseif d.mode == "drive" then
    if d.halt > 0 then
      d.halt = d.halt - 1
    elseif math.random() < 1 / 120 then
      d.halt = math.random(10, 45)  -- lights, a junction
    else
      if math.random() < 1 / 90 then d.heading = d.heading + uniform(-1.6, 1.6) end
      d.heading = d.heading + noise_m(0.03)
      v = math.max(0, d.target + noise_m(3))
    end
  end
  d.lat = d.lat + v * math.cos(d.heading) / M_PER_DEG
  d.lon = d.lon + v * math.sin(d.heading) / (M_PER_DEG * math.cos(math.rad(d.lat)))
  return v
end

function init(args)
  local path, nthreads = args[1], tonumber(args[5] or "1")
  tag, batch = args[2] or tag, tonumber(args[6] or "100")
  local rate = tonumber(args[4] or "0")
  if rate > 0 then interval_s = nthreads / rate end
  local t0 = tonumber(args[3])
  math.randomseed(1000 + tid)
  local i = 0
  for line in io.lines(path) do
    local id, token, lat, lon = line:match("^(%S+)%s+(%S+)%s+(%S+)%s+(%S+)")
    if id then
      if i % nthreads == tid then
        local d = {id = id, lat = tonumber(lat), lon = tonumber(lon), t = t0, n = 0,
                   mode = "park", left = math.random(1, 1800), heading = 0, halt = 0,
                   target = 12, path = "/v1/devices/" .. id .. "/events",
                   headers = {["Authorization"] = "Bearer " .. token,
                              ["Content-Type"] = "application/json"}}
        table.insert(devices, d)
      end
      i = i + 1
    end
  end
  if #devices == 0 then error("no devices for thread " .. tid .. " in " .. path) end
end

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")

local function now_s()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

function delay()
  -- ms until this request's slot: slots interval_s apart, none taken twice
  if interval_s == 0 then return 0 end
  local now = now_s()
  next_slot = math.max(next_slot + interval_s, now)
  return math.floor((next_slot - now) * 1000 + 0.5)
end

function request()
  local d = devices[next_device]
  next_device = next_device % #devices + 1
  local events = {}
  for k = 1, batch do
    step(d)
    d.t = d.t + 1000
    events[k] = string.format(
      '{"kind":"fix","t":%.0f,"lat":%.7f,"lon":%.7f,"accuracy_m":%.1f}', d.t,
      d.lat + noise_m(6) / M_PER_DEG,
      d.lon + noise_m(6) / (M_PER_DEG * math.cos(math.rad(d.lat))), uniform(4, 15))
  end
  d.n = d.n + 1
  local body = string.format('{"batch_id":"%s-%s-%d","events":[%s]}', tag, d.id, d.n,
                             table.concat(events, ","))
  return wrk.format("POST", d.path, d.headers, body)
end

function response(status, headers, body)
  local code = tostring(status)
  codes_seen[code] = (codes_seen[code] or 0) + 1
  if status == 200 and string.find(body, '"status":"stored"', 1, true) then
    n_stored = n_stored + 1
  end
end
