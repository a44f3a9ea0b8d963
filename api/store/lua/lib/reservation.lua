-- Minute balances: reserve at the accept, settle at the end, extend in between.
--
-- Invariant: a balance (`keys.balance`, seconds; absent = unlimited) is only read and
-- written inside the script that also changes the call: the accept's (`reserve_check` then
-- `reserve_take`, lib/reserve.lua, in lib/accept_record.lua), the one that records the end
-- (`settle_call`, lib/settle.lua, in apply_event's terminal branch, which runs once per call
-- because terminal is final) and extend_reservation.lua. So concurrent accepts cannot
-- overdraw it, and a crash either happened before the script (nothing done) or after it
-- (everything done): never billed twice, never a reservation lost. Settlement bills
-- `billed_s` (0 unless answered; else the seconds from `ts_in_progress`, rounded up to the
-- call's `billing_increment_s`, at most `reserved_s`: a call is never billed past what it
-- reserved, however late its end is recorded) and gives back `reserved_s - billed_s`, the
-- balance's only change at the end.
--
-- A reservation belongs to the balance it was taken from: the call keeps that balance's
-- generation (`reserved_gen`, `keys.balance_generation`, which `billing.remove_balance`
-- moves on). A balance removed since (unlimited now), or removed and created again, neither
-- pays the call's extensions (`{'granted', 0}`: unmetered) nor takes its reservation back;
-- its `billed_s` is then what an unlimited workspace's call bills, the whole answered time.

-- Whether the balance a call reserved from (generation `gen`) is still there: neither
-- removed (unlimited now) nor removed and created again.
local function reservation_live(kbalance, gen)
  return redis.call('EXISTS', kbalance) == 1
    and (redis.call('GET', kbalance .. '@GENERATION_SUFFIX@') or '0') == (gen or '0')
end
