-- wrk script: complete tasks 1..N, each exactly once. Thread k of T takes
-- ids k, k+T, k+2T, ... (clerk token in RAVAND_TOKEN, N in RAVAND_TASKS).
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  nthreads = tonumber(os.getenv("RAVAND_THREADS"))
  maxid = tonumber(os.getenv("RAVAND_TASKS"))
  nextid = tid
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("RAVAND_TOKEN")
  wrk.body = '{"data":{"approved":true}}'
end

function request()
  local id = nextid
  nextid = nextid + nthreads
  if id > maxid then id = maxid end     -- exhausted: 409s, counted as non-2xx
  return wrk.format(nil, "/v1/tasks/" .. id .. "/complete")
end
