"""How a SIP leg ended, in Outdial's terms: a terminal status and a reason.

Used by the dispatcher (errors from CreateSIPParticipant) and by the webhook relay
(a SIP participant that left). SIP codes win over Twirp codes when both are known.
"""

from __future__ import annotations

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


_BY_SIP_CODE: dict[int, tuple[OutcomeStatus, str]] = {
    486: ("busy", "busy"),
    600: ("busy", "busy"),
    603: ("busy", "rejected"),
    607: ("busy", "rejected"),
    608: ("busy", "rejected"),
    403: ("failed", "forbidden"),
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
    DisconnectReason.USER_REJECTED: ("busy", "rejected"),
    DisconnectReason.USER_UNAVAILABLE: ("no_answer", "no_answer"),
    DisconnectReason.SIP_TRUNK_FAILURE: ("failed", "trunk_failure"),
    DisconnectReason.MEDIA_FAILURE: ("failed", "media_failure"),
    DisconnectReason.CONNECTION_TIMEOUT: ("failed", "connection_timeout"),
    DisconnectReason.JOIN_FAILURE: ("failed", "join_failure"),
}


def sip_code_outcome(code: int | None) -> tuple[OutcomeStatus, str] | None:
    if code is None:
        return None
    if code in _BY_SIP_CODE:
        return _BY_SIP_CODE[code]
    if 500 <= code < 600:
        return ("failed", "trunk_failure")
    if 400 <= code < 500:
        return ("failed", "sip_error")
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
    disconnect_reason: int, sip_status_code: int | None = None, sip_status: str | None = None
) -> CallOutcome:
    """A SIP participant that left without ever reaching `sip.callStatus == active`."""
    status, reason = (
        sip_code_outcome(sip_status_code)
        or _BY_DISCONNECT.get(disconnect_reason)
        or ("no_answer", "no_answer")
    )
    return CallOutcome(status, reason, sip_status_code, sip_status)


def left_after_answer_outcome(disconnect_reason: int) -> CallOutcome:
    """A SIP participant that hung up (or was dropped) after the call was answered."""
    if disconnect_reason in (DisconnectReason.SIP_TRUNK_FAILURE, DisconnectReason.MEDIA_FAILURE):
        return CallOutcome("completed", "connection_lost")
    if disconnect_reason in (DisconnectReason.ROOM_DELETED, DisconnectReason.ROOM_CLOSED):
        return CallOutcome("completed", "hangup_by_agent")
    return CallOutcome("completed", "hangup_by_callee")
