--@include deadline
--@include reserve

-- What both accepts (accept_call.lua, accept_scheduled.lua) write first, or why nothing:
-- the idempotency key's earlier answer ({'existing', answer}), a call id already taken
-- ({'collision', ''}), a number on the workspace's do-not-call list ({'do_not_call', ''});
-- else the record (one JSON object of string fields), the idempotency
-- answer, the workspace's index, the room's name and the call's deadline, and the call id
-- is returned second. A workspace with a balance (`kbalance`) that cannot cover `reserve_s`
-- seconds is refused ({'insufficient', balance}) before anything is written; else the call
-- holds them (`reserve_take`). An idempotent replay returns first: it reserves nothing.
--
-- Both accepts take these KEYS and ARGV at the same indexes (their wrappers name them
-- alike, `tests/test_store_scripts.py`), so they are read here once; each script reads only
-- what follows them.
local kcall, kdeadlines = KEYS[1], KEYS[8]  -- KEYS 1-8: apply_event's
local kws_calls, kroom, kidempotency, kbalance = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local kdo_not_call = KEYS[13]  -- the workspace's list (api/store/dnc.py)
local idem_value, idem_ttl_s, created_ms, room_ttl_s = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
-- One JSON object of string fields: fewer arguments is faster to send.
local record_json, reserve_s = ARGV[5], tonumber(ARGV[6])

-- `status`: the one the record is written with, which its first deadline is for.
local function accept_record(status)
  if kidempotency ~= '' then
    local previous = redis.call('GET', kidempotency)
    if previous then return {'existing', previous} end
  end
  if redis.call('EXISTS', kcall) == 1 then return {'collision', ''} end
  local record = cjson.decode(record_json)
  -- Read in the step that writes: a number listed a moment before is never accepted.
  if redis.call('HEXISTS', kdo_not_call, record['to']) == 1 then return {'do_not_call', ''} end
  local refused = reserve_check(kbalance, reserve_s)
  if refused then return refused end
  -- One HSET of every field, not one per field: each redis.call costs microseconds of its
  -- own (the accept script took 270-350 us with 27 of them, 150-170 us with one).
  local flat, n = {}, 0
  for field, value in pairs(record) do
    flat[n + 1], flat[n + 2] = field, value
    n = n + 2
  end
  redis.call('HSET', kcall, unpack(flat))
  reserve_take(kbalance, kcall, reserve_s)
  local call_id = record['id']
  if kidempotency ~= '' then redis.call('SET', kidempotency, idem_value, 'EX', idem_ttl_s) end
  -- Scores are created_ms * 1000 + rank within that ms: unique, so cursors never skip one.
  local base = tonumber(created_ms) * 1000
  local rank = redis.call('ZCOUNT', kws_calls, base, base + 999)
  redis.call('ZADD', kws_calls, string.format('%.0f', base + rank), call_id)
  redis.call('SET', kroom, call_id, 'EX', room_ttl_s)
  redis.call('ZADD', kdeadlines, deadline_of(kcall, status, tonumber(created_ms)), call_id)
  return nil, call_id
end
