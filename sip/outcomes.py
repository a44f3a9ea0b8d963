"""How a SIP leg ended, in Outdial's terms: a terminal status and a reason.

Used by the dispatcher (errors from CreateSIPParticipant) and by the webhook relay
(a SIP participant that left). SIP codes win over Twirp codes when both are known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from livekit.api import ServerError, SipCallError
from livekit.protocol.models import DisconnectReason

OutcomeStatus = Literal["completed", "no_answer", "busy", "failed"]


@dataclass(frozen=True, slots=True)
class CallOutcome:
    status: OutcomeStatus
    reason: str
    sip_status_code: int | None = None
    sip_status: str | None = None


# One table for every path that ends a call (dispatcher, webhooks, and the agent worker,
# whose mirror in agent_runtime/outcome.py is held to it by tests/test_outcome_parity.py).
_BY_SIP_CODE: dict[int, tuple[OutcomeStatus, str]] = {
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

# Twirp codes the SIP service derives from SIP responses (see LIVEKIT.md).
_BY_TWIRP_CODE: dict[str, tuple[OutcomeStatus, str]] = {
    "resource_exhausted": ("busy", "busy"),
    "permission_denied": ("busy", "rejected"),
    "not_found": ("failed", "invalid_number"),
    "deadline_exceeded": ("no_answer", "no_answer"),
    "canceled": ("no_answer", "no_answer"),
    "aborted": ("no_answer", "no_answer"),
}

_BY_DISCONNECT: dict[int, tuple[OutcomeStatus, str]] = {
    DisconnectReason.USER_REJECTED: ("busy", "busy"),
    DisconnectReason.USER_UNAVAILABLE: ("no_answer", "no_answer"),
    DisconnectReason.SIP_TRUNK_FAILURE: ("failed", "trunk_failure"),
    DisconnectReason.MEDIA_FAILURE: ("failed", "error"),
    DisconnectReason.CONNECTION_TIMEOUT: ("failed", "error"),
    DisconnectReason.JOIN_FAILURE: ("failed", "error"),
    DisconnectReason.SERVER_SHUTDOWN: ("failed", "error"),
    DisconnectReason.ROOM_DELETED: ("failed", "error"),
}

SIP_CALL_STATUS_ATTRIBUTE = "sip.callStatus"
# livekit/sip moves `sip.callStatus` to `hangup` only when an established call ends, so
# either value at any time means the callee answered.
ANSWERED_CALL_STATUSES = frozenset({"active", "hangup"})
# livekit/sip does not publish the final SIP response today; a bridge (or a future version)
# that does is read through these names.
SIP_STATUS_CODE_ATTRIBUTE = "sip.statusCode"
SIP_STATUS_ATTRIBUTE = "sip.status"


def sip_code_outcome(code: int | None) -> tuple[OutcomeStatus, str] | None:
    """Final SIP response of an unanswered dial -> outcome (RFC 3261 classes)."""
    if code is None:
        return None
    if code in _BY_SIP_CODE:
        return _BY_SIP_CODE[code]
    if code >= 500:
        return ("failed", "trunk_failure")
    if code >= 400:
        return ("failed", "error")
    return None


def dial_error_outcome(error: ServerError) -> CallOutcome:
    """What a refused CreateSIPParticipant means for the call."""
    sip_error = error if isinstance(error, SipCallError) else SipCallError.from_server_error(error)
    code = sip_error.sip_status_code
    status, reason = (
        sip_code_outcome(code) or _BY_TWIRP_CODE.get(error.code) or ("failed", "livekit_error")
    )
    return CallOutcome(status, reason, code, sip_error.sip_status)


def left_before_answer_outcome(
    disconnect_reason: int | None, attributes: Mapping[str, str]
) -> CallOutcome:
    """A SIP participant that left without ever reaching `sip.callStatus == active`.

    The SIP code wins when the bridge published one, then the disconnect reason; without
    either, a leg that rang and stopped was not answered, and one that left while still
    dialing never reached the phone (livekit/sip may report a carrier failure as
    UNKNOWN_REASON or CLIENT_INITIATED).
    """
    raw_code = attributes.get(SIP_STATUS_CODE_ATTRIBUTE, "")
    code = int(raw_code) if raw_code.isdigit() else None
    status, reason = (
        sip_code_outcome(code)
        or _BY_DISCONNECT.get(disconnect_reason or 0)
        or (
            ("no_answer", "no_answer")
            if attributes.get(SIP_CALL_STATUS_ATTRIBUTE) == "ringing"
            else ("failed", "trunk_failure")
        )
    )
    return CallOutcome(status, reason, code, attributes.get(SIP_STATUS_ATTRIBUTE) or None)


def left_after_answer_outcome(disconnect_reason: int) -> CallOutcome:
    """A SIP participant that hung up (or was dropped) after the call was answered."""
    if disconnect_reason in (DisconnectReason.SIP_TRUNK_FAILURE, DisconnectReason.MEDIA_FAILURE):
        return CallOutcome("completed", "connection_lost")
    if disconnect_reason in (DisconnectReason.ROOM_DELETED, DisconnectReason.ROOM_CLOSED):
        return CallOutcome("completed", "hangup_by_agent")
    return CallOutcome("completed", "hangup_by_callee")
