--@include apply_event
--@include event_argv
--@include key_prefix
--@include pacing_hold
--@include wake_pacer

-- Admission of a `queued` call at the start of its dispatch job. Another status, or a call
-- that already holds both slots (a redelivered job), passes; a call already waiting stays
-- waiting (the pacer admits it). A call is admitted when no limit holds it and no call of
-- its workspace waits on its trunk before it; else it waits, and `call.waiting` is recorded
-- when its reason changed.
-- A `queued` call with a call window is checked against it before anything else, by the
-- caller (the window's time zones are Python's, `api.services.due_time`): unless
-- `window_checked` is '1', nothing changes and its window, destination and agent-ready
-- timeout come back. A call without one is admitted in this one round trip.
-- A `queued` call whose number joined its workspace's do-not-call list since its accept
-- changes nothing and comes back {'do_not_call'}: its caller ends it (`canceled`), and the
-- end gives back any slot it held.
-- Returns {'admitted'}, {'pass', status}, {'waiting', reason}, {'window', window, to,
-- ready_s}, {'do_not_call'} or {'missing'}.

-- Why another call waits.
local function waiting_for(kcall) return redis.call('HGET', kcall, 'waiting_for') end

local kcall, kdeadlines = KEYS[1], KEYS[8]  -- KEYS 1-8: apply_event's
local default_rate, default_trunk_concurrency = tonumber(ARGV[1]), tonumber(ARGV[2])
local default_workspace_concurrency = tonumber(ARGV[3])
local now_ms, guard_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local window_checked = ARGV[6]
-- ARGV 7-: apply_event's arguments (informational `call.waiting`, its data's reason
-- written `@@REASON@@`)

local status, call_id, trunk, ws, waiting, window, to, ready_s = unpack(redis.call(
  'HMGET', kcall, 'status', 'id', 'sip_trunk_id', 'workspace_id', 'waiting_for', 'call_window',
  'to', 'agent_ready_timeout_s'))
if not status then return {'missing'} end
if status == 'queued' and window and window ~= '' and to and to ~= ''
   and window_checked ~= '1' then
  return {'window', window, to, ready_s or '0'}
end
if status ~= 'queued' or not trunk or not ws then return {'pass', status} end
local p = store_prefix(kcall, call_id)
-- Before the slots: a redelivered or paced dispatch of a listed number is refused too.
if to and redis.call('HEXISTS', p .. ':ws:' .. ws .. ':dnc', to) == 1 then
  return {'do_not_call'}
end
if redis.call('ZSCORE', trunk_key(p, trunk, 'slots'), call_id)
   and redis.call('ZSCORE', ws_slots_key(p, ws), call_id) then
  return {'pass', status}
end
local kwait = trunk_key(p, trunk, 'waiting:' .. ws)
if redis.call('ZSCORE', kwait, call_id) then
  -- A redelivery; a call that started waiting before waiting had a deadline gets its own.
  redis.call('ZADD', kdeadlines, 'NX', deadline_of(kcall, 'queued', now_ms), call_id)
  return {'waiting', waiting or ''}
end

local rate, tconc, wconc = limits(p, trunk, ws, default_rate, default_trunk_concurrency,
                                  default_workspace_concurrency)
local reason, wait = holding(p, trunk, ws, rate, tconc, wconc, now_ms, guard_ms)
if not reason and redis.call('EXISTS', kwait) == 1 then
  -- Its workspace's earlier calls go first: this one waits behind them, for their reason.
  local head = redis.call('ZRANGE', kwait, 0, 0)[1]
  reason = waiting_for(p .. ':call:' .. head) or 'trunk_rate'
end
if not reason then
  take_slots(p, kcall, call_id, trunk, ws, interval_of(rate, guard_ms), now_ms)
  return {'admitted'}
end

-- Arrival order, unique even within one ms: now * 1000, after the last one waiting.
local last = redis.call('ZRANGE', kwait, -1, -1, 'WITHSCORES')
local order = math.max(now_ms * 1000, (tonumber(last[2]) or 0) + 1)
redis.call('ZADD', kwait, 'NX', string.format('%.0f', order), call_id)
redis.call('ZADD', trunk_key(p, trunk, 'turns'), 'NX', now_ms, ws)
local look = now_ms + @CONCURRENCY_LOOK_MS@
if wait > 0 then look = now_ms + wait end
if redis.call('ZADD', p .. ':pacing:trunks', 'LT', 'CH', look, trunk) == 1 then
  -- The trunk is due sooner than any pacer knew: wake one (it may sleep up to a second).
  wake_pacer(p)
end
redis.call('HSET', kcall, 'waiting_for', reason)
-- Its queue no longer shows one limit: the pacer's next step looks at them all again.
local kheld = trunk_key(p, trunk, 'held')
if redis.call('HGET', kheld, ws) ~= reason then redis.call('HDEL', kheld, ws) end
redis.call('HSETNX', kcall, 'waiting_since', now_ms)
redis.call('ZADD', kdeadlines, deadline_of(kcall, 'queued', now_ms), call_id)
if waiting ~= reason then
  local event = event_args(7)
  event.tail = string.gsub(event.tail, '@@REASON@@', reason)
  apply_event(event_keys(1), event)
end
return {'waiting', reason}
