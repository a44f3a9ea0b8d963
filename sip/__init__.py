"""Telephony on LiveKit: E.164 numbers, trunks, the dial sequence, SIP outcome mapping."""

from sip.dial import (
    RetryPolicy,
    RoomPlan,
    SipLegPlan,
    delete_room,
    dial,
    ensure_room,
    find_sip_participant,
    is_transient,
    list_participants,
)
from sip.numbers import Destination, InvalidNumberError, parse_number, to_e164
from sip.outcomes import (
    CallOutcome,
    dial_error_outcome,
    left_after_answer_outcome,
    left_before_answer_outcome,
)
from sip.trunks import TrunkSettings, create_outbound_trunk, delete_trunk

__all__ = [
    "CallOutcome",
    "Destination",
    "InvalidNumberError",
    "RetryPolicy",
    "RoomPlan",
    "SipLegPlan",
    "TrunkSettings",
    "create_outbound_trunk",
    "delete_room",
    "delete_trunk",
    "dial",
    "dial_error_outcome",
    "ensure_room",
    "find_sip_participant",
    "is_transient",
    "left_after_answer_outcome",
    "left_before_answer_outcome",
    "list_participants",
    "parse_number",
    "to_e164",
]
