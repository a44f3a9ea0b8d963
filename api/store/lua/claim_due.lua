--@include enqueue

-- Moves due members of a schedule (relay retries, call deadlines) into a Dramatiq queue in
-- one step, so a claimed entry is never lost. With a lease, the entry stays in the schedule
-- `lease_ms` later (it comes back if the job that handles it dies) and the message carries
-- that score (@@CLAIM@@): a job whose entry was moved since (the call changed state) knows
-- its claim is stale. Without a lease the entry is removed. The body template's @@CALL@@
-- and @@MSG@@ take the member and the new message id.
local kschedule, kqueue_msgs, kqueue = KEYS[1], KEYS[2], KEYS[3]
local now_ms, limit, body_template = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local msg_id_prefix, lease_ms = ARGV[4], tonumber(ARGV[5])  -- lease 0: remove

local due = redis.call('ZRANGEBYSCORE', kschedule, 0, now_ms, 'LIMIT', 0, limit)
local claim = string.format('%.0f', tonumber(now_ms) + lease_ms)
for i, call_id in ipairs(due) do
  if lease_ms > 0 then
    redis.call('ZADD', kschedule, claim, call_id)
  else
    redis.call('ZREM', kschedule, call_id)
  end
  local msg_id = msg_id_prefix .. now_ms .. '-' .. i
  local body = string.gsub(body_template, '@@CALL@@', call_id)
  body = string.gsub(string.gsub(body, '@@MSG@@', msg_id), '@@CLAIM@@', claim)
  enqueue(kqueue_msgs, kqueue, msg_id, body)
end
return #due
