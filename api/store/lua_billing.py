"""Lua of minute balances: reserve at the accept, settle at the end, extend in between.

Invariant: a balance (`keys.balance`, seconds; absent = unlimited) is only read and written
inside the script that also changes the call: the accept's (`reserve_check` then
`reserve_take`, in `lua.ACCEPT_RECORD_FN`), the one that records the end (`settle_call`, in
`lua.APPLY_EVENT_FN`'s terminal branch, which runs once per call because terminal is final)
and `EXTEND_RESERVATION`. So concurrent accepts cannot overdraw it, and a crash either
happened before the script (nothing done) or after it (everything done): never billed
twice, never a reservation lost. Settlement bills `billed_s` (0 unless answered; else the
seconds from `ts_in_progress`, rounded up to the call's `billing_increment_s`, at most
`reserved_s`: a call is never billed past what it reserved, however late its end is
recorded) and gives back `reserved_s - billed_s`, the balance's only change at the end.

A reservation belongs to the balance it was taken from: the call keeps that balance's
generation (`reserved_gen`, `keys.balance_generation`, which `billing.remove_balance` moves
on). A balance removed since (unlimited now), or removed and created again, neither pays
the call's extensions (`{'granted', 0}`: unmetered) nor takes its reservation back; its
`billed_s` is then what an unlimited workspace's call bills, the whole answered time.

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

# The generation key of a balance is the balance's key with this suffix (`keys.py`).
GENERATION_SUFFIX = ":gen"

_TERMINAL_TABLE = "{" + ", ".join(f"{status}=true" for status in sorted(TERMINAL_STATUSES)) + "}"

_RESERVATION_LIVE_FN = """
-- Whether the balance a call reserved from (generation `gen`) is still there: neither
-- removed (unlimited now) nor removed and created again.
local function reservation_live(kbalance, gen)
  return redis.call('EXISTS', kbalance) == 1
    and (redis.call('GET', kbalance .. '@GEN@') or '0') == (gen or '0')
end
""".replace("@GEN@", GENERATION_SUFFIX)

BILLING_FN = _RESERVATION_LIVE_FN + (
    """
local function workspace_prefix(kcall, call_id, ws)
  return pacing_prefix(kcall, call_id) .. ':ws:' .. ws
end

-- Refusal of an accept the balance cannot cover ({'insufficient', balance}), else nil.
local function reserve_check(kbalance, reserve)
  local balance = redis.call('GET', kbalance)
  if balance and tonumber(balance) < reserve then return {'insufficient', balance} end
  return nil
end

-- After the record is written: a metered workspace's call holds `reserve` seconds of its
-- balance as it is now (its generation: '0' before any removal).
local function reserve_take(kbalance, kcall, reserve)
  if redis.call('EXISTS', kbalance) == 1 then
    redis.call('DECRBY', kbalance, reserve)
    local gen = redis.call('GET', kbalance .. '@GEN@') or '0'
    redis.call('HSET', kcall, 'reserved_s', reserve, 'reserved_gen', gen)
  end
end

-- The call ended now: bill it (once: `billed_s` marks it), give back the rest of its
-- reservation and count it in its workspace's usage of the day. Returns the billed seconds.
local function settle_call(kcall, call_id, status, now)
  local f = redis.call('HMGET', kcall, 'workspace_id', 'reserved_s', 'billed_s',
                       'ts_in_progress', 'billing_increment_s', 'reserved_gen')
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
    -- else the balance that paid the reservation is gone: nothing moves, and the call
    -- (unmetered since) is billed as an unlimited workspace's
    if reservation_live(p .. ':balance', f[6]) then
      billed = math.min(billed, reserved)
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
""".replace("@DAY_MS@", str(DAY_MS))
    .replace("@USAGE_TTL@", str(USAGE_TTL_SECONDS))
    .replace("@GEN@", GENERATION_SUFFIX)
)

# A call still going asks for one more minute: granted from the balance while it holds
# any (the last seconds too: `min(step, balance)`), refused ('exhausted') at 0, and
# ('ended') once the call is terminal. A call not metered any more (its balance removed,
# or removed and created again since it reserved) is answered as an unmetered one,
# {'granted', 0}, and its agent stops asking. Any non-terminal status may ask: an agent
# whose answer event is still on its way is not refused for it, and a reservation of a
# call that was never answered is all given back at its end. The ask names what the agent
# holds: a retry of an ask that was granted (its answer lost) finds more than that and
# takes nothing again; a call holding its whole max duration takes nothing more either.
# KEYS: call. ARGV: seconds to add, seconds the agent holds ('' when it does not say).
# Returns {'granted'|'exhausted'|'ended'|'missing', reserved seconds (0: unmetered)}.
EXTEND_RESERVATION = (
    _RESERVATION_LIVE_FN
    + """
local TERMINAL = @TERMINAL@
local f = redis.call('HMGET', KEYS[1], 'status', 'reserved_s', 'workspace_id', 'id',
                     'max_duration_seconds', 'reserved_gen')
-- no call, or a record without what names its balance
if not (f[1] and f[3] and f[4]) then return {'missing', 0} end
local reserved = tonumber(f[2]) or 0
if TERMINAL[f[1]] then return {'ended', reserved} end
if not f[2] then return {'granted', 0} end
-- the call key is {p}:call:{id}: its prefix names the workspace's keys
local kbalance = string.sub(KEYS[1], 1, #KEYS[1] - #f[4] - 6) .. ':ws:' .. f[3] .. ':balance'
if not reservation_live(kbalance, f[6]) then return {'granted', 0} end
local held = tonumber(ARGV[2])
if held and reserved > held then return {'granted', reserved} end
if reserved >= (tonumber(f[5]) or math.huge) then return {'granted', reserved} end
local balance = tonumber(redis.call('GET', kbalance))
if balance <= 0 then return {'exhausted', reserved} end
local step = math.min(tonumber(ARGV[1]), balance)
redis.call('DECRBY', kbalance, step)
return {'granted', redis.call('HINCRBY', KEYS[1], 'reserved_s', step)}
""".replace("@TERMINAL@", _TERMINAL_TABLE)
)
