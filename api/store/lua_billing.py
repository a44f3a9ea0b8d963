"""Lua of minute balances: reserve at the accept, settle at the end, extend in between.

Invariant: a balance (`keys.balance`, seconds; absent = unlimited) is only read and written
inside the script that also changes the call: the accept's (`reserve_check` then
`reserve_take`, in `lua.ACCEPT_RECORD_FN`), the one that records the end (`settle_call`, in
`lua.APPLY_EVENT_FN`'s terminal branch, which runs once per call because terminal is final)
and `EXTEND_RESERVATION`. So concurrent accepts cannot overdraw it, and a crash either
happened before the script (nothing done) or after it (everything done): never billed
twice, never a reservation lost. Settlement bills `billed_s` (0 unless answered; else the
seconds from `ts_in_progress`, rounded up to the call's `billing_increment_s`, at most what
is reserved plus what is left) and gives back the rest of `reserved_s`.

Every call that ends is counted in its workspace's usage of the day it ended
(`keys.usage`: calls, billed_s, outcome:<status>), metered or not.

The functions need `pacing_prefix` (`lua.PACING_KEYS_FN`) defined before them.
"""

from agent_runtime.contract import TERMINAL_STATUSES

# What an accept reserves, and what each extension adds: one billable minute.
RESERVE_SECONDS = 60
# A workspace's day of usage is kept this long (a year's report, with a margin).
USAGE_TTL_SECONDS = 400 * 86_400
DAY_MS = 86_400_000

_TERMINAL_TABLE = "{" + ", ".join(f"{status}=true" for status in sorted(TERMINAL_STATUSES)) + "}"

BILLING_FN = """
local function workspace_prefix(kcall, call_id, ws)
  return pacing_prefix(kcall, call_id) .. ':ws:' .. ws
end

-- Refusal of an accept the balance cannot cover ({'insufficient', balance}), else nil.
local function reserve_check(kbalance, reserve)
  local balance = redis.call('GET', kbalance)
  if balance and tonumber(balance) < reserve then return {'insufficient', balance} end
  return nil
end

-- After the record is written: a metered workspace's call holds `reserve` seconds.
local function reserve_take(kbalance, kcall, reserve)
  if redis.call('EXISTS', kbalance) == 1 then
    redis.call('DECRBY', kbalance, reserve)
    redis.call('HSET', kcall, 'reserved_s', reserve)
  end
end

-- The call ended now: bill it (once: `billed_s` marks it), give back the rest of its
-- reservation and count it in its workspace's usage of the day. Returns the billed seconds.
local function settle_call(kcall, call_id, status, now)
  local f = redis.call('HMGET', kcall, 'workspace_id', 'reserved_s', 'billed_s',
                       'ts_in_progress', 'billing_increment_s')
  if f[3] or not f[1] then return 0 end
  local billed = 0
  if f[4] then
    local step = math.max(tonumber(f[5]) or 1, 1)
    local elapsed = math.max(math.ceil((now - tonumber(f[4])) / 1000), 0)
    billed = math.ceil(elapsed / step) * step
  end
  local p = workspace_prefix(kcall, call_id, f[1])
  if f[2] then
    local reserved = tonumber(f[2])
    local balance = redis.call('GET', p .. ':balance')
    -- absent: the operator made the workspace unlimited since the accept
    if balance then
      billed = math.min(billed, reserved + math.max(tonumber(balance), 0))
      redis.call('INCRBY', p .. ':balance', reserved - billed)
    end
  end
  redis.call('HSET', kcall, 'billed_s', billed)
  local kusage = p .. ':usage:' .. string.format('%d', math.floor(now / @DAY_MS@))
  redis.call('HINCRBY', kusage, 'calls', 1)
  redis.call('HINCRBY', kusage, 'billed_s', billed)
  redis.call('HINCRBY', kusage, 'outcome:' .. status, 1)
  redis.call('EXPIRE', kusage, @USAGE_TTL@)
  return billed
end
""".replace("@DAY_MS@", str(DAY_MS)).replace("@USAGE_TTL@", str(USAGE_TTL_SECONDS))

# A call still going asks for one more minute: granted from the balance when it holds a
# whole one (or always, unmetered: nothing changes); refused ('exhausted') when it does not,
# and ('ended') once the call is terminal. Any non-terminal status may ask: an agent whose
# answer event is still on its way is not refused for it, and a reservation of a call that
# was never answered is all given back at its end. The ask names what the agent holds: a
# retry of an ask that was granted (its answer lost) finds more than that and takes nothing
# again; a call holding its whole max duration takes nothing more either.
# KEYS: call. ARGV: seconds to add, seconds the agent holds ('' when it does not say).
# Returns {'granted'|'exhausted'|'ended'|'missing', reserved seconds (0: unmetered)}.
EXTEND_RESERVATION = """
local TERMINAL = @TERMINAL@
local f = redis.call('HMGET', KEYS[1], 'status', 'reserved_s', 'workspace_id', 'id',
                     'max_duration_seconds')
if not f[1] then return {'missing', 0} end
local reserved = tonumber(f[2]) or 0
if TERMINAL[f[1]] then return {'ended', reserved} end
if not f[2] then return {'granted', 0} end
local held = tonumber(ARGV[2])
if held and reserved > held then return {'granted', reserved} end
if reserved >= (tonumber(f[5]) or math.huge) then return {'granted', reserved} end
local kbalance = string.sub(KEYS[1], 1, #KEYS[1] - #f[4] - 6) .. ':ws:' .. f[3] .. ':balance'
local balance = redis.call('GET', kbalance)
if not balance then return {'granted', reserved} end
local step = tonumber(ARGV[1])
if tonumber(balance) < step then return {'exhausted', reserved} end
redis.call('DECRBY', kbalance, step)
return {'granted', redis.call('HINCRBY', KEYS[1], 'reserved_s', step)}
""".replace("@TERMINAL@", _TERMINAL_TABLE)
