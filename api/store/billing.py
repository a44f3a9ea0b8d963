"""Minute balances and usage in the store: the operator's credits, a call's extension, the
usage report's reads.

Invariant: a balance changes only in one step with what it pays for — credits by one
INCRBY, its removal with its generation, a call's minutes inside its accept, its extension
or its end (the scripts' lib/reservation.lua states how) — so no balance goes below zero, no
call is billed twice, and no reservation is given back to a balance that did not pay it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

from api.store.base import Store
from api.store.scripts import Key, ScriptCall
from api.store.workspaces import get_workspace

OUTCOME_FIELD = "outcome:"
# What an accept reserves, and what each extension adds: one billable minute.
RESERVE_SECONDS = 60


async def add_credits(store: Store, workspace_id: str, seconds: int) -> int | None:
    """Add `seconds` to the workspace's balance (creating it: the workspace is metered from
    now on); the balance afterwards, or None when there is no such workspace."""
    if await get_workspace(store, workspace_id) is None:
        return None
    return await store.redis.incrby(store.keys.balance(workspace_id), seconds)


async def remove_balance(store: Store, workspace_id: str) -> bool:
    """Make the workspace unlimited again; False when there is no such workspace.

    The balance goes and its generation moves on in one transaction: a call that reserved
    from it is unmetered from now on (its extensions are granted without taking anything,
    its end gives nothing back), even once credits create a new balance."""
    if await get_workspace(store, workspace_id) is None:
        return False
    pipe = store.redis.pipeline(transaction=True)
    pipe.delete(store.keys.balance(workspace_id))
    pipe.incr(store.keys.balance_generation(workspace_id))
    await pipe.execute()
    return True


async def balances(store: Store, workspace_ids: Sequence[str]) -> dict[str, int | None]:
    """Each workspace's balance in seconds (None: unlimited), in one round trip."""
    if not workspace_ids:
        return {}
    found = await store.redis.mget([store.keys.balance(ws) for ws in workspace_ids])
    return {
        ws: None if raw is None else int(raw) for ws, raw in zip(workspace_ids, found, strict=True)
    }


ExtendOutcome = Literal["granted", "exhausted", "ended", "missing"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtendReservation(ScriptCall):
    NAME = "extend_reservation"
    call: Key
    step_s: int
    held_s: int | Literal[""]  # '' when the agent does not say


@dataclass(frozen=True, slots=True)
class Extension:
    outcome: ExtendOutcome
    # What the call holds now (0: not metered).
    reserved_seconds: int


async def extend_reservation(
    store: Store, call_id: str, held_seconds: int | None = None
) -> Extension:
    """One more minute for a call still going (extend_reservation.lua; the
    balance's last seconds when less is left), unless it already holds more than
    `held_seconds` (what the asking agent knows it holds: a retried ask takes nothing
    twice) or its whole max duration. A call whose balance was removed since it reserved
    is granted 0 (unmetered)."""
    reply = await store.run(
        ExtendReservation(
            call=store.keys.call(call_id),
            step_s=RESERVE_SECONDS,
            held_s="" if held_seconds is None else held_seconds,
        )
    )
    return Extension(outcome=reply[0], reserved_seconds=int(reply[1]))


@dataclass(frozen=True, slots=True)
class DayUsage:
    day: int  # days since 1970-01-01 (UTC)
    calls: int
    billed_seconds: int
    outcomes: dict[str, int]


async def usage_by_day(
    store: Store, workspace_ids: Sequence[str], first_day: int, last_day: int
) -> dict[str, list[DayUsage]]:
    """Each workspace's days with calls in [first_day, last_day], in one round trip."""
    days = range(first_day, last_day + 1)
    pipe = store.redis.pipeline(transaction=False)
    for ws in workspace_ids:
        for day in days:
            pipe.hgetall(store.keys.usage(ws, day))
    replies = iter(await pipe.execute())
    found: dict[str, list[DayUsage]] = {}
    for ws in workspace_ids:
        rows = []
        for day in days:
            raw = cast(dict[str, str], next(replies))
            if raw:
                rows.append(_day_usage(day, raw))
        found[ws] = rows
    return found


def _day_usage(day: int, raw: dict[str, str]) -> DayUsage:
    outcomes = {
        name[len(OUTCOME_FIELD) :]: int(count)
        for name, count in raw.items()
        if name.startswith(OUTCOME_FIELD)
    }
    return DayUsage(
        day=day,
        calls=int(raw.get("calls", 0)),
        billed_seconds=int(raw.get("billed_s", 0)),
        outcomes=outcomes,
    )
