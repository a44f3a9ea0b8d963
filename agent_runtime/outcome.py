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


# The same table as sip/outcomes.py, which the API applies to LiveKit's webhooks: whichever
# reports an unanswered leg first decides the call, so both must agree (this package may
# not import `sip`; tests/test_outcome_parity.py compares the two on every input).
_BY_SIP_STATUS: dict[int, tuple[EndedStatus, EndReason]] = {
    486: ("busy", "busy"),
    600: ("busy", "busy"),
    403: ("busy", "rejected"),
    603: ("busy", "rejected"),
    607: ("busy", "rejected"),
    608: ("busy", "rejected"),
    404: ("failed", "invalid_number"),
    604: ("failed", "invalid_number"),
    408: ("no_answer", "no_answer"),
    480: ("no_answer", "no_answer"),
    487: ("no_answer", "no_answer"),
}

_BY_DISCONNECT_REASON: dict[int, tuple[EndedStatus, EndReason]] = {
    DisconnectReason.USER_REJECTED: ("busy", "busy"),
    DisconnectReason.USER_UNAVAILABLE: ("no_answer", "no_answer"),
    DisconnectReason.SIP_TRUNK_FAILURE: ("failed", "trunk_failure"),
    DisconnectReason.MEDIA_FAILURE: ("failed", "error"),
    DisconnectReason.CONNECTION_TIMEOUT: ("failed", "error"),
    DisconnectReason.JOIN_FAILURE: ("failed", "error"),
    DisconnectReason.SERVER_SHUTDOWN: ("failed", "error"),
    DisconnectReason.ROOM_DELETED: ("failed", "error"),
}


def outcome_from_sip_status(code: int) -> tuple[EndedStatus, EndReason] | None:
    """Final SIP response of an unanswered dial -> outcome (RFC 3261 classes)."""
    if code in _BY_SIP_STATUS:
        return _BY_SIP_STATUS[code]
    if code >= 500:
        return "failed", "trunk_failure"
    if code >= 400:
        return "failed", "error"
    return None


def unanswered_outcome(disconnect_reason: int | None, attributes: Mapping[str, str]) -> CallOutcome:
    """The SIP participant left before `sip.callStatus` became active."""
    code, text = sip_status_of(attributes)
    decided = outcome_from_sip_status(code) if code is not None else None
    if decided is None:
        decided = _BY_DISCONNECT_REASON.get(disconnect_reason or 0)
    if decided is None and attributes.get(SIP_CALL_STATUS_ATTRIBUTE) == "ringing":
        # it rang and stopped without a SIP reason: the callee (or the ring timer) gave up
        decided = "no_answer", "no_answer"
    if decided is None:
        # left while still dialing: the carrier never reached the phone (livekit/sip may
        # report a trunk failure as UNKNOWN_REASON / CLIENT_INITIATED)
        decided = "failed", "trunk_failure"
    status, reason = decided
    return CallOutcome(status=status, reason=reason, sip_status_code=code, sip_status=text)


def not_joined_outcome() -> CallOutcome:
    """The SIP participant never appeared within the ring timeout (+ margin)."""
    return CallOutcome(status="no_answer", reason="no_answer")


def answered_outcome(reason: EndReason, attributes: Mapping[str, str] | None = None) -> CallOutcome:
    """How an answered call ended, from the first end reason the runtime recorded."""
    code, text = sip_status_of(attributes or {})
    status: EndedStatus = "failed" if reason == "error" else "completed"
    return CallOutcome(status=status, reason=reason, sip_status_code=code, sip_status=text)
