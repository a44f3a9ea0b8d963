--@include apply_event
--@include event_argv

-- Cancels a call (any status) and takes it out of the due set in the same step.
local kcall, kdue = KEYS[1], KEYS[9]  -- KEYS 1-8: apply_event's
-- ARGV: apply_event's arguments

local result = apply_event(event_keys(1), event_args(1))
if result[1] == 'applied' then
  redis.call('ZREM', kdue, redis.call('HGET', kcall, 'id'))
end
return result
