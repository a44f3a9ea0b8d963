-- apply_event's keys and event as a script receives them (`api.store.events.EventKeys`,
-- `EventArgs`): 8 keys from KEYS[first], and the event's arguments from ARGV[first] to the
-- end of ARGV (its field/value pairs last).

local function event_keys(first)
  return {
    call = KEYS[first], events = KEYS[first + 1], eids = KEYS[first + 2],
    delivery = KEYS[first + 3], relay_active = KEYS[first + 4], relay_msgs = KEYS[first + 5],
    relay_queue = KEYS[first + 6], deadlines = KEYS[first + 7],
  }
end

local function event_args(first)
  local fields = {}
  for i = 0, tonumber(ARGV[first + 12]) - 1 do
    fields[i + 1] = {ARGV[first + 13 + 2 * i], ARGV[first + 14 + 2 * i]}
  end
  return {
    event_id = ARGV[first], new_status = ARGV[first + 1], expected_status = ARGV[first + 2],
    head = ARGV[first + 3], tail = ARGV[first + 4], now_ms = ARGV[first + 5],
    retention_s = tonumber(ARGV[first + 6]), relay_msg_id = ARGV[first + 7],
    relay_msg_body = ARGV[first + 8], max_events = tonumber(ARGV[first + 9]),
    max_bytes = tonumber(ARGV[first + 10]), after_end_ms = ARGV[first + 11], fields = fields,
  }
end
