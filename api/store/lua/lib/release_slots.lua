--@include key_prefix
--@include pacing_keys
--@include wake_pacer

-- Gives the call's pacing slots back (and drops it from its waiting set): a second release
-- finds nothing and changes nothing. Freeing a slot while calls wait wakes a pacer and
-- makes the trunk due at once.
local function release_slots(kcall, call_id, now)
  local trunk, ws = unpack(redis.call('HMGET', kcall, 'sip_trunk_id', 'workspace_id'))
  if not trunk or not ws then return end
  local p = store_prefix(kcall, call_id)
  local freed = redis.call('ZREM', trunk_key(p, trunk, 'slots'), call_id)
              + redis.call('ZREM', ws_slots_key(p, ws), call_id)
  local kwait = trunk_key(p, trunk, 'waiting:' .. ws)
  if redis.call('ZREM', kwait, call_id) == 1 and redis.call('EXISTS', kwait) == 0 then
    redis.call('ZREM', trunk_key(p, trunk, 'turns'), ws)
  end
  if freed > 0 and redis.call('EXISTS', p .. ':pacing:trunks') == 1 then
    redis.call('ZADD', p .. ':pacing:trunks', 'XX', 'LT', now, trunk)
    wake_pacer(p)
  end
end
