-- The dial step's SIP ids and when its request left (`api.store.dialing`), written only
-- onto a call that still exists, in one step with reading its status.
-- Returns the status, or nil (no call).
local kcall = KEYS[1]
local sip_call_id, sip_participant_id, dial_sent_at_ms = ARGV[1], ARGV[2], ARGV[3]

if redis.call('EXISTS', kcall) == 0 then return false end
redis.call('HSET', kcall, 'sip_call_id', sip_call_id, 'sip_participant_id', sip_participant_id,
           'dial_sent_at', dial_sent_at_ms)
return redis.call('HGET', kcall, 'status')
