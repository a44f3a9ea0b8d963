--@include reserve

-- What both accepts (accept_call.lua, accept_scheduled.lua) write first, or why nothing:
-- the idempotency key's earlier answer ({'existing', answer}), a call id already taken
-- ({'collision', ''}); else the record (one JSON object of string fields), the idempotency
-- answer, the workspace's index and the room's name, and the call id is returned second.
-- A workspace with a balance (`kbalance`) that cannot cover `reserve` seconds is refused
-- ({'insufficient', balance}) before anything is written; else the call holds them
-- (`reserve_take`). An idempotent replay returns first: it reserves nothing.
-- `a`: kcall, kws_calls, kroom, kidempotency ('' when none), kbalance, idem_value,
-- idem_ttl_s, created_ms, room_ttl_s, record_json, reserve_s.
local function accept_record(a)
  local kcall, kidem = a.kcall, a.kidempotency
  if kidem ~= '' then
    local previous = redis.call('GET', kidem)
    if previous then return {'existing', previous} end
  end
  if redis.call('EXISTS', kcall) == 1 then return {'collision', ''} end
  local refused = reserve_check(a.kbalance, a.reserve_s)
  if refused then return refused end
  local record = cjson.decode(a.record_json)
  for field, value in pairs(record) do
    redis.call('HSET', kcall, field, value)
  end
  reserve_take(a.kbalance, kcall, a.reserve_s)
  local call_id = record['id']
  if kidem ~= '' then redis.call('SET', kidem, a.idem_value, 'EX', a.idem_ttl_s) end
  -- Scores are created_ms * 1000 + rank within that ms: unique, so cursors never skip one.
  local base = tonumber(a.created_ms) * 1000
  local rank = redis.call('ZCOUNT', a.kws_calls, base, base + 999)
  redis.call('ZADD', a.kws_calls, string.format('%.0f', base + rank), call_id)
  redis.call('SET', a.kroom, call_id, 'EX', a.room_ttl_s)
  return nil, call_id
end
