"""The Redis side of a drain: each step is one atomic script (see `api.store.lua`) that
also returns the drain's next move, so delivering one event costs one round trip."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Literal

from api.relay.payload import CallTarget
from api.relay.state import DeliveryState
from api.store.base import Store
from api.store.workspaces import workspace_disabled

# Longer than one attempt can take, so a live drain never loses its lease.
LEASE_MARGIN_MS = 5_000
# How soon a call whose lease a concurrent drain holds is tried again.
LOCKED_RETRY_MS = 1_000

StepKind = Literal["event", "done", "busy", "lost", "scheduled", "locked", "gone"]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Drain:
    """One drain's hold on a call: its lease token and what its deliveries need."""

    store: Store
    target: CallTarget
    token: str
    lease_ms: int
    max_in_flight: int

    @property
    def call_id(self) -> str:
        return self.target.call_id

    def keys(self) -> list[str]:
        keys, call_id = self.store.keys, self.call_id
        return [
            keys.call(call_id),
            keys.events(call_id),
            keys.delivery(call_id),
            keys.relay_lock(call_id),
            keys.relay_active(call_id),
            keys.relay_in_flight(self.target.workspace_id),
            keys.relay_waiting(self.target.workspace_id),
            keys.relay_due(),
        ]


@dataclass(frozen=True, slots=True)
class Step:
    """What the drain does next; for `event`, the event after `sequence - 1`."""

    kind: StepKind
    sequence: int = 0
    event_json: str = ""
    state: DeliveryState = field(default_factory=DeliveryState)


def _step(reply: list, sequence: int) -> Step:
    if reply[0] != "event":
        return Step(reply[0])
    return Step("event", sequence, reply[1], DeliveryState.from_json(reply[2] or None))


async def begin(
    store: Store, call_id: str, token: str, lease_ms: int, max_in_flight: int
) -> tuple[Drain | None, Step]:
    """Take the call's drain lease and its first step (`locked`: another drain has it,
    the call is due again shortly; `gone`: the call or its callback URL no longer exists)."""
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
            now + LOCKED_RETRY_MS,
            now,
            max_in_flight,
            keys.workspace(""),
            keys.relay_in_flight(""),
            keys.relay_waiting(""),
        ],
    )
    if reply[0] != "ok":
        return None, Step(reply[0])
    _, workspace_id, callback_url, room_name, metadata, secret, cursor, *step = reply
    target = CallTarget(
        call_id=call_id,
        workspace_id=workspace_id,
        room_name=room_name,
        callback_url=callback_url,
        metadata_json=metadata,
        webhook_secret=secret,
    )
    drain = Drain(store, target, token, lease_ms, max_in_flight)
    return drain, _step(step, int(cursor) + 1)


async def with_workspace_state(drain: Drain) -> Drain:
    """The drain, knowing whether its workspace is disabled now (read once per drain)."""
    disabled = await workspace_disabled(drain.store, drain.target.workspace_id)
    target = replace(drain.target, workspace_disabled=disabled)
    return replace(drain, target=target)


async def record(drain: Drain, sequence: int, state: DeliveryState) -> Step:
    """Store one attempt's outcome; returns the next step (`scheduled`: parked for retry)."""
    reply = await drain.store.relay_record_script(
        keys=drain.keys(),
        args=[
            drain.token,
            sequence,
            state.to_json(),
            "1" if state.final else "0",
            state.next_attempt_ms or 0,
            drain.call_id,
            drain.lease_ms,
            now_ms(),
            drain.max_in_flight,
        ],
    )
    return _step(reply, sequence + 1)


async def release(
    store: Store,
    call_id: str,
    token: str,
    retry_in_ms: int | None,
    workspace_id: str | None = None,
) -> None:
    """Drop the lease (and the workspace slot, when known; otherwise its lease runs out);
    the call waits in `relay:due` (`retry_in_ms` None: the call is gone)."""
    keys = store.keys
    await store.relay_release_script(
        keys=[
            keys.relay_lock(call_id),
            keys.relay_due(),
            keys.relay_active(call_id),
            keys.relay_in_flight(workspace_id or ""),
            keys.relay_waiting(workspace_id or ""),
        ],
        args=[token, call_id, "" if retry_in_ms is None else now_ms() + retry_in_ms, now_ms()],
    )
