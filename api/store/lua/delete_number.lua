-- Deletes a caller number with its holder key and, for a trunk Outdial created, the trunk's
-- owner, so the number can be registered again (by any workspace) and nothing dangles.
-- Returns the deleted record JSON, or nil when the workspace has no such number.
local knumbers, kholder = KEYS[1], KEYS[2]
local number, workspace_id, trunk_owner_prefix = ARGV[1], ARGV[2], ARGV[3]

local raw = redis.call('HGET', knumbers, number)
if not raw then return false end
redis.call('HDEL', knumbers, number)
if redis.call('GET', kholder) == workspace_id then redis.call('DEL', kholder) end
local record = cjson.decode(raw)
if record['trunk_managed'] then
  local owner = trunk_owner_prefix .. record['sip_trunk_id']
  if redis.call('GET', owner) == workspace_id then redis.call('DEL', owner) end
end
return raw
