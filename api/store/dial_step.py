"""The dial step's first round trip (dial_step.lua): the call with its workspace's state
and, when the call is before its dial and its workspace is not disabled, the paced
`dialing` mark.

Invariant: the mark is taken in the step that reads the call's status and its workspace's
`disabled` flag, so a disabled workspace's call is never marked `dialing`, and it expects
exactly the status read (a compare-and-set, as `api.store.pacing.mark_dialing`'s); the
trunk's dial rate decides it as it decides every dial (lib/paced_dial.lua).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from api.store.base import Store
from api.store.call_record import CallUpdate
from api.store.call_workspace import CallWithWorkspace, call_with_workspace
from api.store.clock import now_ms
from api.store.events import EventArgs, EventKeys, EventSpec, apply_args, event_keys
from api.store.pacing import PacedDial, PacingDefaults, paced_dial_reply
from api.store.scripts import KEYS, ScriptCall

# Filled from the call's record by dial_step.lua.
_TO, _FROM = "@@TO@@", "@@FROM@@"


@dataclass(frozen=True, slots=True, kw_only=True)
class DialStep(ScriptCall):
    NAME = "dial_step"
    event_keys: Annotated[EventKeys, KEYS]
    workspace_prefix: str  # the workspace's key is this and its id
    default_rate: float
    guard_ms: int
    now_ms: int
    reserved_turn_ms: int | Literal[""]  # '' none
    event: EventArgs


def dialing_event(to: str, from_number: str | None, token: str, status: str) -> EventSpec:
    """`call.dialing` from `status`, naming the run that takes it (`dial_owner`)."""
    return EventSpec(
        "call.dialing",
        {"to": to, "from": from_number},
        expected_status=status,
        call_update=CallUpdate(dial_owner=token),
    )


def _marked(reply: list[Any]) -> bool:
    return bool(reply[0][0] == "applied")


@dataclass(frozen=True, slots=True)
class DialStepStart:
    """The call as read before the mark, and the mark (None: nothing was marked)."""

    found: CallWithWorkspace
    paced: PacedDial | None


async def read_and_mark_dialing(
    store: Store, call_id: str, token: str, reserved_turn_ms: int | None
) -> DialStepStart:
    """Read the call with its workspace and, when it is before its dial and its workspace
    is not disabled, take the paced `dialing` mark for `token`, in one round trip."""
    defaults = PacingDefaults.from_settings(store.settings)
    now = now_ms()
    event = dialing_event(_TO, _FROM, token, "")
    # A mark is replicated before the dial goes out, as `pacing.mark_dialing`'s is: a
    # failover that lost it would let a redelivery take it again and ring the callee twice.
    # A step that only read (the owner's redelivery looking into its dial) needs no replica.
    reply = await store.run_replicated(
        DialStep(
            event_keys=event_keys(store, call_id),
            workspace_prefix=store.keys.workspace(""),
            default_rate=defaults.max_calls_per_second,
            guard_ms=defaults.dial_guard_ms,
            now_ms=now,
            reserved_turn_ms="" if reserved_turn_ms is None else reserved_turn_ms,
            event=apply_args(store, event, now, call_id),
        ),
        wrote=_marked,
    )
    mark, *found = reply
    paced = None if mark[0] == "read" else paced_dial_reply(mark, now)
    return DialStepStart(call_with_workspace(found, call_id), paced)
