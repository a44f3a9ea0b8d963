"""What the readiness probe and `/metrics` read from Redis: is it there, how much waits in the
queues and schedules, and the dialer's backlog (waiting calls by reason, slots in use per
trunk, the pacer's and the scheduler's lag, and scheduled calls due or later).

Invariant: reads only (never a script, never a prune), so a probe or a scrape changes
nothing it measures; every figure counts what the scripts count (unexpired leases, the
waiting sets, the due set). The cost is bounded by what is live: one round trip for the
queues, one read per trunk that held a lease within its calls' longest lease
(`keys.pacing_leased_trunks`), and one per waiting call (pipelined in chunks, never one
blocking script).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import cast, get_args

from agent_runtime.contract import WaitingReason
from api.store.base import Store
from api.store.clock import now_ms

WAITING_REASONS: tuple[str, ...] = get_args(WaitingReason)
# Slots are shown for this many trunks at most (the busiest); the rest are summed under
# `OTHER_TRUNKS`, so a deployment with thousands of trunks keeps a bounded series count.
SLOT_TRUNKS_SHOWN = 20
OTHER_TRUNKS = "other"
_CHUNK = 500


async def ping(store: Store) -> None:
    """Raises (redis-py's errors) unless Redis answers."""
    await store.redis.ping()


@dataclass(frozen=True, slots=True)
class Backlog:
    dial_messages: int
    relay_messages: int
    # Calls whose callbacks wait for a retry, and calls with a deadline (the live ones).
    relay_retries: int
    calls_with_deadline: int


async def read_backlog(store: Store) -> Backlog:
    pipe = store.redis.pipeline(transaction=False)
    pipe.llen(store.dial_queue.ids)
    pipe.llen(store.relay_queue.ids)
    pipe.zcard(store.keys.relay_due())
    pipe.zcard(store.keys.deadlines())
    dial, relay, due, live = await pipe.execute()
    return Backlog(dial, relay, due, live)


@dataclass(frozen=True, slots=True)
class PacingBacklog:
    """`waiting`: calls waiting per reason (every reason present, 0 when none); `slots`:
    slots in use per trunk, only trunks using some, the busiest `SLOT_TRUNKS_SHOWN` by name
    and the rest under `OTHER_TRUNKS`; lags in seconds (0 when nothing is overdue)."""

    waiting: dict[str, int] = field(default_factory=dict)
    slots: dict[str, int] = field(default_factory=dict)
    pacer_lag_s: float = 0.0
    scheduled_due: int = 0
    scheduled_later: int = 0
    scheduler_lag_s: float = 0.0


def _lag_s(earliest: list[tuple[str, float]], now: int) -> float:
    """How long ago the earliest score (ms) passed; 0 when it is still ahead."""
    return max(0.0, (now - earliest[0][1]) / 1000) if earliest else 0.0


async def _waiting_by_reason(store: Store, trunks: list[str]) -> dict[str, int]:
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    for trunk in trunks:
        pipe.zrange(keys.trunk_turns(trunk), 0, -1)
    workspaces = cast(list[list[str]], await pipe.execute())
    pipe = store.redis.pipeline(transaction=False)
    for trunk, names in zip(trunks, workspaces, strict=True):
        for ws in names:
            pipe.zrange(keys.trunk_waiting(trunk, ws), 0, -1)
    call_ids = [c for members in cast(list[list[str]], await pipe.execute()) for c in members]
    counts: Counter[str] = Counter({reason: 0 for reason in WAITING_REASONS})
    for start in range(0, len(call_ids), _CHUNK):
        pipe = store.redis.pipeline(transaction=False)
        for call_id in call_ids[start : start + _CHUNK]:
            pipe.hget(keys.call(call_id), "waiting_for")
        for reason in cast(list[str | None], await pipe.execute()):
            # A call between its admission script's steps has no reason yet: the rate.
            counts[reason or "trunk_rate"] += 1
    return dict(counts)


async def _slots_by_trunk(store: Store, now: int) -> dict[str, int]:
    trunks = cast(
        list[str], await store.redis.zrangebyscore(store.keys.pacing_leased_trunks(), now, "+inf")
    )
    pipe = store.redis.pipeline(transaction=False)
    for trunk in trunks:
        pipe.zcount(store.keys.trunk_slots(trunk), now, "+inf")
    used = {t: int(n) for t, n in zip(trunks, await pipe.execute(), strict=True) if n}
    busiest = sorted(used, key=lambda t: (-used[t], t))
    shown = {t: used[t] for t in busiest[:SLOT_TRUNKS_SHOWN]}
    rest = sum(used[t] for t in busiest[SLOT_TRUNKS_SHOWN:])
    if rest:
        shown[OTHER_TRUNKS] = rest
    return shown


async def read_pacing_backlog(store: Store) -> PacingBacklog:
    keys = store.keys
    now = now_ms()
    pipe = store.redis.pipeline(transaction=False)
    pipe.zrange(keys.pacing_trunks(), 0, -1, withscores=True)
    pipe.zcount(keys.scheduled_due(), "-inf", now)
    pipe.zcount(keys.scheduled_due(), f"({now}", "+inf")
    pipe.zrange(keys.scheduled_due(), 0, 0, withscores=True)
    paced, due, later, earliest_due = await pipe.execute()
    paced = cast(list[tuple[str, float]], paced)
    return PacingBacklog(
        waiting=await _waiting_by_reason(store, [trunk for trunk, _ in paced]),
        slots=await _slots_by_trunk(store, now),
        # A trunk's score is when a pacer must look at it next (pace.lua).
        pacer_lag_s=_lag_s(sorted(paced, key=lambda member: member[1]), now),
        scheduled_due=int(due),
        scheduled_later=int(later),
        scheduler_lag_s=_lag_s(earliest_due, now),
    )
