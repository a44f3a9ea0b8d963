-- Adds numbers to a workspace's do-not-call list (api/store/dnc.py): all of them or, when
-- the new ones would take the list past `max_numbers`, none ({'full', size, new ones}).
-- A number already listed keeps when and why it was added first; a number twice in the
-- list counts once. Returns {'added', how many were new}.
local kdnc, korder = KEYS[1], KEYS[2]
local max_numbers, entry = tonumber(ARGV[1]), ARGV[2]  -- entry: `<added ms>:<source>`
-- One JSON array of E.164 numbers: `unpack` of ARGV stops at a few thousand values.
local numbers_json = ARGV[3]

local new, seen = {}, {}
for _, number in ipairs(cjson.decode(numbers_json)) do
  if not seen[number] then
    seen[number] = true
    if redis.call('HEXISTS', kdnc, number) == 0 then new[#new + 1] = number end
  end
end
local size = redis.call('HLEN', kdnc)
if size + #new > max_numbers then return {'full', size, #new} end
for _, number in ipairs(new) do
  redis.call('HSET', kdnc, number, entry)
  redis.call('ZADD', korder, 0, number)
end
return {'added', #new}
