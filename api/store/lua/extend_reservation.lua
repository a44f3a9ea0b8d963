--@include key_prefix
--@include reservation

-- A call still going asks for one more minute: granted from the balance while it holds
-- any (the last seconds too: `min(step, balance)`), refused ('exhausted') at 0, and
-- ('ended') once the call is terminal. A call not metered any more (its balance removed,
-- or removed and created again since it reserved) is answered as an unmetered one,
-- {'granted', 0}, and its agent stops asking. Any non-terminal status may ask: an agent
-- whose answer event is still on its way is not refused for it, and a reservation of a
-- call that was never answered is all given back at its end. The ask names what the agent
-- holds: a retry of an ask that was granted (its answer lost) finds more than that and
-- takes nothing again; a call holding its whole max duration takes nothing more either.
-- Returns {'granted'|'exhausted'|'ended'|'missing', reserved seconds (0: unmetered)}.
local kcall = KEYS[1]
local step_s = tonumber(ARGV[1])
local held_s = tonumber(ARGV[2])  -- the seconds the agent holds ('' when it does not say)

local TERMINAL = @TERMINAL_STATUSES@
local status, reserved_s, ws, call_id, max_duration, reserved_gen =
  unpack(redis.call('HMGET', kcall, 'status', 'reserved_s', 'workspace_id', 'id',
                    'max_duration_seconds', 'reserved_gen'))
-- no call, or a record without what names its balance
if not (status and ws and call_id) then return {'missing', 0} end
local reserved = tonumber(reserved_s) or 0
if TERMINAL[status] then return {'ended', reserved} end
if not reserved_s then return {'granted', 0} end
local kbalance = workspace_key_prefix(kcall, call_id, ws) .. ':balance'
if not reservation_live(kbalance, reserved_gen) then return {'granted', 0} end
if held_s and reserved > held_s then return {'granted', reserved} end
if reserved >= (tonumber(max_duration) or math.huge) then return {'granted', reserved} end
local balance = tonumber(redis.call('GET', kbalance))
if balance <= 0 then return {'exhausted', reserved} end
local step = math.min(step_s, balance)
redis.call('DECRBY', kbalance, step)
return {'granted', redis.call('HINCRBY', kcall, 'reserved_s', step)}
