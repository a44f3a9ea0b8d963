"""The Redis side of a call's drain: its lease, its steps and their release.

Invariant: each step is one atomic script (relay_begin.lua, relay_record.lua,
relay_release.lua; lib/relay_next.lua describes the drain) that also returns the drain's
next move, so delivering one event costs one round trip, and at most one drain holds a call
(its lease token) and at most the workspace's in-flight cap of deliveries run at once. The
relay (`api.relay.steps`) turns these replies into its own types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from api.store.base import Store
from api.store.clock import now_ms
from api.store.scripts import Key, ScriptCall

# The drain's next moves, as its scripts name them.
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


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayBegin(ScriptCall):
    NAME = "relay_begin"
    call: Key
    events: Key
    delivery: Key
    lock: Key
    relay_active: Key
    relay_due: Key
    token: str
    lease_ms: int
    call_id: str
    locked_retry_at_ms: int
    now_ms: int
    max_in_flight: int
    # The workspace's keys are these prefixes and its id (known only in the script).
    workspace_prefix: str
    in_flight_prefix: str
    waiting_prefix: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayRecord(ScriptCall):
    NAME = "relay_record"
    call: Key
    events: Key
    delivery: Key
    lock: Key
    relay_active: Key
    in_flight: Key
    waiting: Key
    relay_due: Key
    token: str
    sequence: int
    state_json: str
    final: str  # '1' | '0'
    next_attempt_at_ms: int
    call_id: str
    lease_ms: int
    now_ms: int
    max_in_flight: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayRelease(ScriptCall):
    NAME = "relay_release"
    lock: Key
    relay_due: Key
    relay_active: Key
    in_flight: Key  # keys without members when the workspace is unknown
    waiting: Key
    token: str
    call_id: str
    retry_at_ms: int | Literal[""]  # '': the call is gone
    now_ms: int


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
    reply = await store.run(
        RelayBegin(
            call=keys.call(call_id),
            events=keys.events(call_id),
            delivery=keys.delivery(call_id),
            lock=keys.relay_lock(call_id),
            relay_active=keys.relay_active(call_id),
            relay_due=keys.relay_due(),
            token=token,
            lease_ms=lease_ms,
            call_id=call_id,
            locked_retry_at_ms=now + locked_retry_ms,
            now_ms=now,
            max_in_flight=max_in_flight,
            workspace_prefix=keys.workspace(""),
            in_flight_prefix=keys.relay_in_flight(""),
            waiting_prefix=keys.relay_waiting(""),
        )
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
    reply = await store.run(
        RelayRecord(
            call=keys.call(call_id),
            events=keys.events(call_id),
            delivery=keys.delivery(call_id),
            lock=keys.relay_lock(call_id),
            relay_active=keys.relay_active(call_id),
            in_flight=keys.relay_in_flight(workspace_id),
            waiting=keys.relay_waiting(workspace_id),
            relay_due=keys.relay_due(),
            token=token,
            sequence=attempt.sequence,
            state_json=attempt.state_json,
            final="1" if attempt.final else "0",
            next_attempt_at_ms=attempt.next_attempt_ms,
            call_id=call_id,
            lease_ms=lease_ms,
            now_ms=now_ms(),
            max_in_flight=max_in_flight,
        )
    )
    return _next_step(reply)


async def release_drain(
    store: Store, call_id: str, token: str, retry_in_ms: int | None, workspace_id: str | None
) -> None:
    """Drop the lease (and the workspace slot, when known; otherwise its lease runs out);
    the call waits in `relay:due` (`retry_in_ms` None: the call is gone)."""
    keys = store.keys
    now = now_ms()
    await store.run(
        RelayRelease(
            lock=keys.relay_lock(call_id),
            relay_due=keys.relay_due(),
            relay_active=keys.relay_active(call_id),
            in_flight=keys.relay_in_flight(workspace_id or ""),
            waiting=keys.relay_waiting(workspace_id or ""),
            token=token,
            call_id=call_id,
            retry_at_ms="" if retry_in_ms is None else now + retry_in_ms,
            now_ms=now,
        )
    )
