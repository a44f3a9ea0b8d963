"""Pure decisions about the phone leg: may the agent speak, and how did the call end.

Kept free of I/O so they are tested against the real livekit enum values and attribute
names. The SIP bridge (livekit/sip) reports the callee's progress in the participant
attribute `sip.callStatus` (dialing -> ringing -> active -> hangup) and, for a failed dial,
the participant leaves with a `disconnect_reason`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from livekit.protocol.models import DisconnectReason

from .contract import EndedStatus, EndReason

SIP_CALL_STATUS_ATTRIBUTE = "sip.callStatus"
CALL_STATUS_ACTIVE = "active"
# livekit/sip does not publish the final SIP response today; a bridge (or a future version)
# that does is read through these names.
SIP_STATUS_CODE_ATTRIBUTE = "sip.statusCode"
SIP_STATUS_ATTRIBUTE = "sip.status"


@dataclass(frozen=True)
class CallOutcome:
    status: EndedStatus
    reason: EndReason
    sip_status_code: int | None = None
    sip_status: str | None = None

    def ended_event_data(self, duration_seconds: float) -> dict[str, Any]:
        """The `data` of a `call.ended` event."""
        return {
            "status": self.status,
            "reason": self.reason,
            "duration_seconds": round(max(duration_seconds, 0.0), 3),
            "sip_status_code": self.sip_status_code,
            "sip_status": self.sip_status,
        }


def is_answered(attributes: Mapping[str, str]) -> bool:
    """The callee picked up: the only state in which the agent may speak."""
    return attributes.get(SIP_CALL_STATUS_ATTRIBUTE) == CALL_STATUS_ACTIVE


def sip_status_of(attributes: Mapping[str, str]) -> tuple[int | None, str | None]:
    raw_code = attributes.get(SIP_STATUS_CODE_ATTRIBUTE)
    code = int(raw_code) if raw_code and raw_code.isdigit() else None
    return code, attributes.get(SIP_STATUS_ATTRIBUTE) or None


_BY_DISCONNECT_REASON: dict[int, tuple[EndedStatus, EndReason]] = {
    DisconnectReason.USER_REJECTED: ("busy", "busy"),
    DisconnectReason.USER_UNAVAILABLE: ("no_answer", "no_answer"),
    DisconnectReason.SIP_TRUNK_FAILURE: ("failed", "trunk_failure"),
    DisconnectReason.MEDIA_FAILURE: ("failed", "error"),
    DisconnectReason.JOIN_FAILURE: ("failed", "error"),
    DisconnectReason.SERVER_SHUTDOWN: ("failed", "error"),
    DisconnectReason.ROOM_DELETED: ("failed", "error"),
}


def outcome_from_sip_status(code: int) -> tuple[EndedStatus, EndReason]:
    """Final SIP response of an unanswered dial -> outcome (RFC 3261 classes)."""
    if code in (486, 600):
        return "busy", "busy"
    if code in (403, 603, 607, 608):
        return "busy", "rejected"
    if code in (404, 408, 410, 480, 487, 604):
        return "no_answer", "no_answer"
    if code >= 500:
        return "failed", "trunk_failure"
    return "failed", "error"


def unanswered_outcome(disconnect_reason: int | None, attributes: Mapping[str, str]) -> CallOutcome:
    """The SIP participant left before `sip.callStatus` became active."""
    code, text = sip_status_of(attributes)
    if disconnect_reason in _BY_DISCONNECT_REASON:
        status, reason = _BY_DISCONNECT_REASON[disconnect_reason]
    elif code is not None:
        status, reason = outcome_from_sip_status(code)
    elif attributes.get(SIP_CALL_STATUS_ATTRIBUTE) == "ringing":
        # it rang and stopped without a SIP reason: the callee (or the ring timer) gave up
        status, reason = "no_answer", "no_answer"
    else:
        # left while still dialing: the carrier never reached the phone (livekit/sip may
        # report a trunk failure as UNKNOWN_REASON / CLIENT_INITIATED)
        status, reason = "failed", "trunk_failure"
    return CallOutcome(status=status, reason=reason, sip_status_code=code, sip_status=text)


def not_joined_outcome() -> CallOutcome:
    """The SIP participant never appeared within the ring timeout (+ margin)."""
    return CallOutcome(status="no_answer", reason="no_answer")


def answered_outcome(reason: EndReason, attributes: Mapping[str, str] | None = None) -> CallOutcome:
    """How an answered call ended, from the first end reason the runtime recorded."""
    code, text = sip_status_of(attributes or {})
    status: EndedStatus = "failed" if reason == "error" else "completed"
    return CallOutcome(status=status, reason=reason, sip_status_code=code, sip_status=text)
