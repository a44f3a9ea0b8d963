-- The operator assigns a raw trunk id to a workspace. A trunk Outdial created for a number
-- is refused: its credentials and bill are that number's workspace's, and it goes with it.
-- Returns 'assigned', 'missing' (no such workspace) or 'owned'.
local kworkspace, kworkspace_trunks, ktrunk_owner = KEYS[1], KEYS[2], KEYS[3]
local trunk_id = ARGV[1]

if redis.call('EXISTS', kworkspace) == 0 then return 'missing' end
if redis.call('EXISTS', ktrunk_owner) == 1 then return 'owned' end
redis.call('SADD', kworkspace_trunks, trunk_id)
return 'assigned'
