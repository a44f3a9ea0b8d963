--@include relay_next

-- Takes the call's drain lease and returns what every delivery of the call needs, plus the
-- first step. When another drain holds the lease, the call goes (back) into `relay:due`
-- without moving an earlier retry forward, so this message may end. The workspace's keys
-- are only known here: they are built from the prefixes in ARGV (Outdial's scripts already
-- assume a single Redis node, see apply_event's broker keys).
local kcall, kevents, kdelivery, klock, krelay_active, krelay_due =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local token, lease_ms, call_id = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local locked_retry_at_ms = ARGV[4]
local now_ms, max_in_flight = tonumber(ARGV[5]), tonumber(ARGV[6])
local workspace_prefix, in_flight_prefix, waiting_prefix = ARGV[7], ARGV[8], ARGV[9]

if not redis.call('SET', klock, token, 'NX', 'PX', lease_ms) then
  redis.call('ZADD', krelay_due, 'NX', locked_retry_at_ms, call_id)
  return {'locked'}
end
local ws, callback_url, room_name, metadata =
  unpack(redis.call('HMGET', kcall, 'workspace_id', 'callback_url', 'room_name', 'metadata'))
if not ws or not callback_url then return {'gone'} end
local secret = redis.call('HGET', workspace_prefix .. ws, 'webhook_secret') or ''
local cursor = tonumber(redis.call('HGET', kdelivery, 'cursor') or '0')
local step = relay_next({
  kcall = kcall, kevents = kevents, kdelivery = kdelivery, klock = klock,
  krelay_active = krelay_active, kin_flight = in_flight_prefix .. ws,
  kwaiting = waiting_prefix .. ws, krelay_due = krelay_due, cursor = cursor, lease_ms = lease_ms,
  now_ms = now_ms, max_in_flight = max_in_flight, call_id = call_id,
})
return {'ok', ws, callback_url, room_name or '', metadata or '{}', secret, cursor, step[1],
        step[2], step[3]}
