"""A drain's steps in the relay's terms: the store's drain scripts (`api.store.drain`), each
one round trip that also returns the next move, turned into `Drain` and `Step`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from api.relay.payload import CallTarget
from api.relay.state import DeliveryState
from api.store.base import Store
from api.store.drain import (
    Attempt,
    NextStep,
    StepKind,
    begin_drain,
    record_attempt,
    release_drain,
)
from api.store.workspaces import workspace_disabled

# Longer than one attempt can take, so a live drain never loses its lease.
LEASE_MARGIN_MS = 5_000
# How soon a call whose lease a concurrent drain holds is tried again.
LOCKED_RETRY_MS = 1_000


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


@dataclass(frozen=True, slots=True)
class Step:
    """What the drain does next; for `event`, the event after `sequence - 1`."""

    kind: StepKind
    sequence: int = 0
    event_json: str = ""
    state: DeliveryState = field(default_factory=DeliveryState)


def _step(next_step: NextStep, sequence: int) -> Step:
    if next_step.kind != "event":
        return Step(next_step.kind)
    return Step(
        "event", sequence, next_step.event_json, DeliveryState.from_json(next_step.state_json)
    )


async def begin(
    store: Store, call_id: str, token: str, lease_ms: int, max_in_flight: int
) -> tuple[Drain | None, Step]:
    """Take the call's drain lease and its first step (`locked`: another drain has it,
    the call is due again shortly; `gone`: the call or its callback URL no longer exists)."""
    lease, first = await begin_drain(
        store, call_id, token, lease_ms, max_in_flight, LOCKED_RETRY_MS
    )
    if lease is None:
        return None, _step(first, 0)
    target = CallTarget(
        call_id=call_id,
        workspace_id=lease.workspace_id,
        room_name=lease.room_name,
        callback_url=lease.callback_url,
        metadata_json=lease.metadata_json,
        webhook_secret=lease.webhook_secret,
    )
    drain = Drain(store, target, token, lease_ms, max_in_flight)
    return drain, _step(first, lease.cursor + 1)


async def with_workspace_state(drain: Drain) -> Drain:
    """The drain, knowing whether its workspace is disabled now (read once per drain)."""
    disabled = await workspace_disabled(drain.store, drain.target.workspace_id)
    target = replace(drain.target, workspace_disabled=disabled)
    return replace(drain, target=target)


async def record(drain: Drain, sequence: int, state: DeliveryState) -> Step:
    """Store one attempt's outcome; returns the next step (`scheduled`: parked for retry)."""
    attempt = Attempt(sequence, state.to_json(), state.final, state.next_attempt_ms or 0)
    next_step = await record_attempt(
        drain.store,
        drain.call_id,
        drain.target.workspace_id,
        drain.token,
        drain.lease_ms,
        drain.max_in_flight,
        attempt,
    )
    return _step(next_step, sequence + 1)


async def release(
    store: Store,
    call_id: str,
    token: str,
    retry_in_ms: int | None,
    workspace_id: str | None = None,
) -> None:
    """Drop the lease (and the workspace slot, when known; otherwise its lease runs out);
    the call waits in `relay:due` (`retry_in_ms` None: the call is gone)."""
    await release_drain(store, call_id, token, retry_in_ms, workspace_id)
