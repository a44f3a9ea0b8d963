-- A Dramatiq message written by a script, in the Redis broker's layout (`api.store.messages`):
-- its body under its id in `<queue>.msgs`, its id at the queue's tail (its head when
-- `first`: Dramatiq fetches from the head), then the queue's wake-up PUBLISH, so a worker
-- waiting on the channel takes it at once.
local function enqueue(kmsgs, kqueue, msg_id, body, first)
  redis.call('HSET', kmsgs, msg_id, body)
  redis.call(first and 'LPUSH' or 'RPUSH', kqueue, msg_id)
  redis.call('PUBLISH', kqueue, '')
end
