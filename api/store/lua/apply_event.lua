--@include apply_event
--@include event_argv

-- One event applied to one call (see lib/apply_event.lua).
-- KEYS: apply_event's 8. ARGV: apply_event's arguments.
return apply_event(event_keys(1), event_args(1))
