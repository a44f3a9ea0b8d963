--@include key_prefix

-- The workspace's event feed (`keys.Keys.feed`, read by `api.store.feed`): a capped stream
-- whose entries name a recorded event by call id (`c`) and sequence (`s`); the event itself
-- stays in the call's list, so the hot accept step writes two short fields rather than a
-- second copy of every event (transcripts included). Built from the call key's prefix like
-- the pacing keys; an idle workspace's feed expires.
local function feed_append(kcall, seq)
  local call_id, ws = unpack(redis.call('HMGET', kcall, 'id', 'workspace_id'))
  if not call_id or not ws then return end
  local kfeed = workspace_key_prefix(kcall, call_id, ws) .. ':feed'
  redis.call('XADD', kfeed, 'MAXLEN', '~', @FEED_MAXLEN@, '*', 'c', call_id, 's', seq)
  redis.call('EXPIRE', kfeed, @FEED_TTL_SECONDS@)
end
