-- Gives a workspace its numeric alias (`api.store.aliases`): the counter's next number,
-- written to the workspace's `alias` field in the same step; nothing for a workspace that
-- has one already or does not exist.
-- Returns the workspace's alias, or false when there is no such workspace.
local kworkspace, kcounter = KEYS[1], KEYS[2]

if redis.call('EXISTS', kworkspace) == 0 then return false end
local alias = redis.call('HGET', kworkspace, 'alias')
if alias then return tonumber(alias) end
alias = redis.call('INCR', kcounter)
redis.call('HSET', kworkspace, 'alias', alias)
return alias
