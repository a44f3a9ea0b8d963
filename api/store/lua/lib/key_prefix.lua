-- The store's key prefix, from a call's key: `{p}:call:{id}` cut before `:call:{id}`. Keys
-- a script builds from it (pacing, feed, balance, usage) are keys it did not declare, fine
-- on one Redis; Outdial does not run on Redis Cluster.
local function store_prefix(kcall, call_id) return string.sub(kcall, 1, #kcall - #call_id - 6) end

-- The prefix of the keys of the call's workspace `ws` (`keys.Keys`' `{p}:ws:{ws}:...`).
local function workspace_key_prefix(kcall, call_id, ws)
  return store_prefix(kcall, call_id) .. ':ws:' .. ws
end
