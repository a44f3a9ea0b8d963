--@include deadline
--@include release_slots
--@include settle
--@include feed
--@include enqueue

-- `apply_event` is the single place where a call changes state: it refuses backward and
-- post-terminal transitions, de-duplicates event ids, appends the event with the next
-- sequence number and, when the call has a callback URL and no relay message in flight,
-- enqueues one (lib/enqueue.lua). The terminal branch also gives back the call's pacing
-- slots (`release_slots`), so no path that ends a call can keep them, and settles the
-- call's minutes (`settle_call`): its fourth reply is the seconds billed. Every event it
-- records is announced on its workspace's feed (`feed_append`) in the same step, so the
-- live stream misses none and shows none unrecorded.
--
-- `k`: the keys, by name (lib/event_argv.lua's `event_keys`). `e`: the event, by name
-- (`event_args` there, `api.store.events.EventArgs`'s fields): event_id, new_status ('' =
-- informational), expected_status ('' = any), head, tail, now_ms, retention_s, relay_msg_id,
-- relay_msg_body (the relay message), max_events, max_bytes, after_end_ms (the quota of an
-- informational event: 0, 0, '' for none) and fields, the {field, value} pairs written to
-- the call when applied ('' deletes).

-- The status order is the contract's (`STATUS_RANK`), generated into the script.
local RANK = @STATUS_RANK@
local TERMINAL = @TERMINAL_RANK@

local function apply_event(k, e)
  local kcall = k.call
  local current = redis.call('HGET', kcall, 'status')
  if not current then return {'missing', 0, ''} end
  local seen = redis.call('HGET', k.eids, e.event_id)
  if seen then return {'duplicate', tonumber(seen), current} end
  local expected = e.expected_status
  if expected ~= '' and current ~= expected then return {'conflict', 0, current} end
  local new_status = e.new_status
  if new_status ~= '' and (RANK[current] == TERMINAL or RANK[new_status] <= RANK[current]) then
    return {'stale', 0, current}
  end

  -- A quota binds informational events only (status events are bounded by the state
  -- order): after the call's end plus `after_end` ms they are refused, and they never take
  -- the call past `max_events` events or `max_bytes` stored bytes (all its events count).
  local now = e.now_ms
  local size = #e.head + #e.tail
  if new_status == '' and e.after_end_ms ~= '' then
    local ended_at = tonumber(redis.call('HGET', kcall, 'ended_at'))
    if ended_at and tonumber(now) > ended_at + tonumber(e.after_end_ms) then
      return {'ended', 0, current}
    end
  end
  if new_status == '' and e.max_events > 0 then
    local stored = tonumber(redis.call('HGET', kcall, 'seq') or '0')
    local bytes = tonumber(redis.call('HGET', kcall, 'event_bytes') or '0')
    if stored >= e.max_events or bytes + size > e.max_bytes then
      return {'over_quota', 0, current}
    end
  end

  local status = current
  if new_status ~= '' then
    status = new_status
    redis.call('HSET', kcall, 'status', status, 'updated_at', now, 'ts_' .. status, now)
  end
  for _, pair in ipairs(e.fields) do
    local field, value = pair[1], pair[2]
    if value == '' then redis.call('HDEL', kcall, field)
    else redis.call('HSET', kcall, field, value) end
  end

  local seq = redis.call('HINCRBY', kcall, 'seq', 1)
  redis.call('RPUSH', k.events, e.head .. seq .. ',"status":"' .. status .. '"' .. e.tail)
  redis.call('HSET', k.eids, e.event_id, seq)
  redis.call('HINCRBY', kcall, 'event_bytes', size)
  feed_append(kcall, seq)

  local billed = 0
  if new_status ~= '' then
    local call_id = redis.call('HGET', kcall, 'id')
    if RANK[status] == TERMINAL then
      redis.call('ZREM', k.deadlines, call_id)
      release_slots(kcall, call_id, now)
      billed = settle_call(kcall, call_id, status, tonumber(now))
      redis.call('HSET', kcall, 'ended_at', now)
      for _, key in ipairs({kcall, k.events, k.eids, k.delivery}) do
        redis.call('EXPIRE', key, e.retention_s)
      end
    else
      redis.call('ZADD', k.deadlines, deadline_of(kcall, status, tonumber(now)), call_id)
    end
  end

  if redis.call('HEXISTS', kcall, 'callback_url') == 1
     and redis.call('SET', k.relay_active, '1', 'NX') then
    enqueue(k.relay_msgs, k.relay_queue, e.relay_msg_id, e.relay_msg_body)
  end
  return {'applied', seq, status, billed}
end
