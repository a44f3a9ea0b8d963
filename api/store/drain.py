"""The Redis side of a call's drain: its lease, its steps and their release.

Invariant: each step is one atomic script (`lua_relay.RELAY_BEGIN`, `RELAY_RECORD`,
`RELAY_RELEASE`) that also returns the drain's next move, so delivering one event costs one
round trip, and at most one drain holds a call (its lease token) and at most the
workspace's in-flight cap of deliveries run at once. The relay (`api.relay.steps`) turns
these replies into its own types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from api.store.base import Store
from api.store.clock import now_ms

# The drain's next moves, as its scripts (`api.store.lua_relay`) name them.
StepKind = Literal["event", "done", "busy", "lost", "scheduled", "locked", "gone"]
_STEP_KINDS = frozenset(get_args(StepKind))


@dataclass(frozen=True, slots=True)
class NextStep:
    """The drain's next move: `event` (then the event's JSON and its delivery state so far),
    `done`, `busy`, `lost`, `scheduled`, `locked` or `gone`."""

    kind: StepKind
    event_json: str = ""
    state_json: str | None = None


@dataclass(frozen=True, slots=True)
class DrainLease:
    """What every delivery of the call needs, returned with its lease."""

    workspace_id: str
    callback_url: str
    room_name: str
    metadata_json: str
    webhook_secret: str
    # The last sequence delivered or given up.
    cursor: int


def _next_step(reply: list[Any]) -> NextStep:
    kind = reply[0]
    if kind == "event":
        return NextStep("event", reply[1], reply[2] or None)
    if kind not in _STEP_KINDS:  # a script and this module out of step: no move to make
        raise RuntimeError(f"a drain script answered an unknown step {kind!r}")
    return NextStep(kind)


async def begin_drain(
    store: Store, call_id: str, token: str, lease_ms: int, max_in_flight: int, locked_retry_ms: int
) -> tuple[DrainLease | None, NextStep]:
    """Take the call's drain lease and its first step (no lease: `locked`, another drain has
    it and the call is due again in `locked_retry_ms`; or `gone`)."""
    keys = store.keys
    now = now_ms()
    reply = await store.relay_begin_script(
        keys=[
            keys.call(call_id),
            keys.events(call_id),
            keys.delivery(call_id),
            keys.relay_lock(call_id),
            keys.relay_active(call_id),
            keys.relay_due(),
        ],
        args=[
            token,
            lease_ms,
            call_id,
            now + locked_retry_ms,
            now,
            max_in_flight,
            keys.workspace(""),
            keys.relay_in_flight(""),
            keys.relay_waiting(""),
        ],
    )
    if reply[0] != "ok":
        return None, _next_step(reply)
    _, workspace_id, callback_url, room_name, metadata, secret, cursor, *step = reply
    lease = DrainLease(workspace_id, callback_url, room_name, metadata, secret, int(cursor))
    return lease, _next_step(step)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt's outcome as the delivery hash stores it."""

    sequence: int
    state_json: str
    # Delivered or given up: the cursor moves past it. Else it is due at `next_attempt_ms`.
    final: bool
    next_attempt_ms: int


async def record_attempt(
    store: Store,
    call_id: str,
    workspace_id: str,
    token: str,
    lease_ms: int,
    max_in_flight: int,
    attempt: Attempt,
) -> NextStep:
    """Store one attempt and free its slot; the next step (`scheduled`: parked for retry,
    `lost`: another drain took the lease over)."""
    keys = store.keys
    reply = await store.relay_record_script(
        keys=[
            keys.call(call_id),
            keys.events(call_id),
            keys.delivery(call_id),
            keys.relay_lock(call_id),
            keys.relay_active(call_id),
            keys.relay_in_flight(workspace_id),
            keys.relay_waiting(workspace_id),
            keys.relay_due(),
        ],
        args=[
            token,
            attempt.sequence,
            attempt.state_json,
            "1" if attempt.final else "0",
            attempt.next_attempt_ms,
            call_id,
            lease_ms,
            now_ms(),
            max_in_flight,
        ],
    )
    return _next_step(reply)


async def release_drain(
    store: Store, call_id: str, token: str, retry_in_ms: int | None, workspace_id: str | None
) -> None:
    """Drop the lease (and the workspace slot, when known; otherwise its lease runs out);
    the call waits in `relay:due` (`retry_in_ms` None: the call is gone)."""
    keys = store.keys
    now = now_ms()
    await store.relay_release_script(
        keys=[
            keys.relay_lock(call_id),
            keys.relay_due(),
            keys.relay_active(call_id),
            keys.relay_in_flight(workspace_id or ""),
            keys.relay_waiting(workspace_id or ""),
        ],
        args=[token, call_id, "" if retry_in_ms is None else now + retry_in_ms, now],
    )
