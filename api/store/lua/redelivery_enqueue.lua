--@include enqueue

-- Queues a one-off delivery of one event (`api.store.redelivery`), unless one is pending
-- for it (its flag) or the workspace used its requests of the window (its counter), in one
-- step with the flag, the counter and the message.
-- Returns {'queued', 0}, {'pending', ms left} or {'limited', ms until the window resets}.
local kpending, krate, krelay_msgs, krelay_queue = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local msg_id, msg_body, per_window = ARGV[1], ARGV[2], tonumber(ARGV[3])
local window_ms, pending_ttl_ms = ARGV[4], ARGV[5]

if redis.call('EXISTS', kpending) == 1 then return {'pending', redis.call('PTTL', kpending)} end
local used = tonumber(redis.call('GET', krate) or '0')
if used >= per_window then return {'limited', redis.call('PTTL', krate)} end
if redis.call('INCR', krate) == 1 then redis.call('PEXPIRE', krate, window_ms) end
redis.call('SET', kpending, msg_id, 'PX', pending_ttl_ms)
enqueue(krelay_msgs, krelay_queue, msg_id, msg_body)
return {'queued', 0}
