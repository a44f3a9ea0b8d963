-- The pacing keys of a call (`keys.Keys.trunk_slots` etc.), built in Lua from the store's
-- prefix (lib/key_prefix.lua): a call names its trunk and workspace only in its record, so
-- a script that holds the call's key learns them there.
local function trunk_key(p, trunk, suffix)
  return p .. ':pacing:trunk:' .. trunk .. ':' .. suffix
end
local function ws_slots_key(p, ws) return p .. ':pacing:ws:' .. ws .. ':slots' end
