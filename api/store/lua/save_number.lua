-- Saves a caller number. A number belongs to at most one workspace: its holder key is set
-- if absent, so a number another workspace holds is refused ('taken'). A raw trunk id is
-- accepted only when the operator assigned it to the workspace ('unassigned' otherwise); a
-- trunk Outdial just created is recorded as the workspace's. Re-registering a number whose
-- trunk Outdial created for it drops that trunk's owner and returns its id (the caller
-- deletes it at LiveKit). The first number, one saved with default=1, or one that was the
-- default is the default; the flag is cleared on every other number in the same step.
-- Returns {'saved', record JSON, replaced trunk id or ''}, {'taken'} or {'unassigned'}.
local knumbers, kholder, kworkspace_trunks = KEYS[1], KEYS[2], KEYS[3]
local ktrunk_owner = KEYS[4]  -- the owner of the record's trunk
local number, record_json, wants_default = ARGV[1], ARGV[2], ARGV[3] == '1'
local workspace_id, trunk_owner_prefix = ARGV[4], ARGV[5]

local holder = redis.call('GET', kholder)
if holder and holder ~= workspace_id then return {'taken'} end
local record = cjson.decode(record_json)
local trunk = record['sip_trunk_id']
if not record['trunk_managed'] and redis.call('SISMEMBER', kworkspace_trunks, trunk) == 0 then
  return {'unassigned'}
end
local existing = redis.call('HGET', knumbers, number)
local was_default = false
local replaced = ''
if existing then
  local previous = cjson.decode(existing)
  was_default = previous['default']
  if previous['trunk_managed'] and previous['sip_trunk_id'] ~= trunk then
    replaced = previous['sip_trunk_id']
    redis.call('DEL', trunk_owner_prefix .. replaced)
  end
end
local make_default = wants_default or redis.call('HLEN', knumbers) == 0 or was_default
if make_default then
  for _, raw in ipairs(redis.call('HVALS', knumbers)) do
    local other = cjson.decode(raw)
    if other['default'] and other['number'] ~= number then
      other['default'] = false
      redis.call('HSET', knumbers, other['number'], cjson.encode(other))
    end
  end
end
record['default'] = make_default
local encoded = cjson.encode(record)
redis.call('HSET', knumbers, number, encoded)
redis.call('SET', kholder, workspace_id)
if record['trunk_managed'] then redis.call('SET', ktrunk_owner, workspace_id) end
return {'saved', encoded, replaced}
