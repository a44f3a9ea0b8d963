--@include pacing_keys

-- The dialer's pacing (admit.lua, pace.lua, dial_paced.lua). Invariants kept, each by one
-- atomic script:
-- - A call holds a slot in its trunk's and its workspace's slot sets (zsets call id ->
--   lease expiry ms) from its admission to its end; a set never holds more calls than its
--   limit (expired leases are pruned first). The release is lib/release_slots.lua, in the
--   step that records the end. A lease is the call's whole budget from its admission; one
--   that runs out while its call still has a deadline (a reconciler that could not settle
--   it yet) follows that deadline instead of being pruned, so a live call never loses its
--   slot and a slot never outlives its call's deadline by more than `LEASE_RENEWAL_MS`.
-- - A trunk's dials keep its rate (dial_paced.lua): turns (1000 + guard)/rate ms apart,
--   taken in order, and at most floor(rate) dials in any 1000 + guard ms, counted from when
--   each request left the worker when it left late; the guard absorbs the jitter between
--   then and the dial reaching the trunk. Admissions are spaced by the same turns
--   (`admit-tat`) but may run up to `ADMIT_AHEAD_MS` ahead of them, and catch up to
--   `ADMIT_CATCH_UP` turns at once after a late step: the dials' rules, not the
--   admissions', keep the trunk's rate. Rate 0: unlimited. The clock
--   is the callers' (`now_ms` in ARGV): the worker processes of one deployment share the
--   host's NTP time.
-- - A call that may not go now waits in its (trunk, workspace) waiting set, in arrival
--   order; the trunk's `turns` zset orders its workspaces by their last admission, and a
--   pacer's step admits round-robin from the least recently served workspace that is under
--   its limit, so a workspace's backlog never holds another's call beyond that one's own
--   limits. A waiting call's deadline is its waiting budget (`max_waiting_s`,
--   lib/deadline.lua) from when it started waiting; its admission gives it the dispatch
--   deadline.
-- - The admitted call's dispatch message is written in the step that admits it (outbox).
-- Limits: the trunk's `limits` hash overrides the deployment's defaults; the workspace
-- hash's `max_concurrent_calls` overrides the default workspace limit. 0 means unlimited.

-- (rate, trunk concurrency, workspace concurrency) of a trunk and workspace (`ws` nil: the
-- workspace's is the default).
local function limits(p, trunk, ws, d_rate, d_trunk, d_ws)
  local rate, trunk_conc = unpack(redis.call('HMGET', trunk_key(p, trunk, 'limits'),
                                             'max_calls_per_second', 'max_concurrent_calls'))
  local ws_conc = ws and redis.call('HGET', p .. ':ws:' .. ws, 'max_concurrent_calls')
  return tonumber(rate) or d_rate, tonumber(trunk_conc) or d_trunk, tonumber(ws_conc) or d_ws
end

local function interval_of(rate, guard)
  if rate <= 0 then return 0 end
  return (1000 + guard) / rate
end
