-- Takes a number off a workspace's do-not-call list (api/store/dnc.py): the entry and its
-- place in the list's order together. Returns 1 when it was listed, else 0.
local kdnc, korder = KEYS[1], KEYS[2]
local number = ARGV[1]

redis.call('ZREM', korder, number)
return redis.call('HDEL', kdnc, number)
