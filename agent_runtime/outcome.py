"""Pure decisions about the phone leg: may the agent speak, and how did the call end.

The SIP outcome table is `sip.outcomes`'s (the API applies the same one to LiveKit's
webhooks and to refused dials): whichever path reports a leg's end first decides the call,
so there is one table. Free of I/O, so it is tested against the real livekit enum values.
The SIP bridge (livekit/sip) reports the callee's progress in the participant attribute
`sip.callStatus` (dialing -> ringing -> active -> hangup); a failed dial leaves the room
with a `disconnect_reason`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sip.outcomes import (
    SIP_CALL_STATUS_ATTRIBUTE,
    SIP_STATUS_ATTRIBUTE,
    SIP_STATUS_CODE_ATTRIBUTE,
    CallOutcome,
    left_after_answer_outcome,
    left_before_answer_outcome,
)

from .contract import EndReason, outcome_event_type

CALL_STATUS_ACTIVE = "active"

__all__ = [
    "SIP_CALL_STATUS_ATTRIBUTE",
    "CallOutcome",
    "answered_outcome",
    "ended_event",
    "is_answered",
    "left_after_answer_outcome",
    "not_joined_outcome",
    "unanswered_outcome",
]

# The leg left before `sip.callStatus` became active: the SIP code, then the disconnect
# reason, then how far it got decide (see `sip.outcomes`).
unanswered_outcome = left_before_answer_outcome


def is_answered(attributes: Mapping[str, str]) -> bool:
    """The callee picked up: the only state in which the agent may speak."""
    return attributes.get(SIP_CALL_STATUS_ATTRIBUTE) == CALL_STATUS_ACTIVE


def sip_status_of(attributes: Mapping[str, str]) -> tuple[int | None, str | None]:
    raw_code = attributes.get(SIP_STATUS_CODE_ATTRIBUTE)
    code = int(raw_code) if raw_code and raw_code.isdigit() else None
    return code, attributes.get(SIP_STATUS_ATTRIBUTE) or None


def not_joined_outcome() -> CallOutcome:
    """The SIP participant never appeared within the ring timeout (+ margin): the dial never
    produced a leg, which is not the callee's doing."""
    return CallOutcome(status="failed", reason="trunk_failure")


def answered_outcome(reason: EndReason, attributes: Mapping[str, str] | None = None) -> CallOutcome:
    """How an answered call ended, from the first end reason the runtime recorded."""
    code, text = sip_status_of(attributes or {})
    failed = reason in ("error", "agent_failed")
    return CallOutcome(
        status="failed" if failed else "completed",
        reason=reason,
        sip_status_code=code,
        sip_status=text,
    )


def ended_event(outcome: CallOutcome, duration_seconds: float) -> tuple[str, dict[str, Any]]:
    """The event that reports `outcome` (`call.failed` or `call.ended`) and its data; the
    API and its webhook path use the same rule (`contract.outcome_event_type`)."""
    data: dict[str, Any] = {
        "status": outcome.status,
        "reason": outcome.reason,
        "duration_seconds": round(max(duration_seconds, 0.0), 3),
        "sip_status_code": outcome.sip_status_code,
        "sip_status": outcome.sip_status,
    }
    return outcome_event_type(outcome.status), data
