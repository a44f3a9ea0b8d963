--@include pacing_limits
--@include pacing_slots

-- The limit holding a call of `ws` on `trunk` back now, or nil; with the ms to wait for a
-- rate. Its order is the one `waiting_for` shows (admit.lua, pace.lua): the trunk's
-- concurrency, the workspace's, then the trunk's rate.
local function holding(p, trunk, ws, rate, tconc, wconc, now_ms, guard_ms)
  if tconc > 0 and in_use(p, trunk_key(p, trunk, 'slots'), now_ms, trunk) >= tconc then
    return 'trunk_concurrency', 0
  end
  if wconc > 0 and in_use(p, ws_slots_key(p, ws), now_ms) >= wconc then
    return 'workspace_concurrency', 0
  end
  local wait = gcra_wait(trunk_key(p, trunk, 'admit-tat'), interval_of(rate, guard_ms), now_ms)
  if wait > 0 then return 'trunk_rate', wait end
  return nil, 0
end
