"""The agent worker and the API decide an unanswered leg's outcome from the same facts
(whichever reports first ends the call), and `agent_runtime` may not import `sip`: its
mirror of the table must give the same answer for every input."""

from __future__ import annotations

import itertools
from typing import get_args

from livekit.protocol.models import DisconnectReason

from agent_runtime.contract import EndedStatus, EndReason
from agent_runtime.outcome import unanswered_outcome
from sip import left_before_answer_outcome

SIP_CODES = [None, 180, 302, 400, 403, 404, 408, 415, 480, 486, 487, 500, 503, 600, 603, 604]
CALL_STATES = [None, "dialing", "ringing", "automation"]
REASONS = [None, *DisconnectReason.values()]


def _attributes(call_status: str | None, sip_code: int | None) -> dict[str, str]:
    attributes = {}
    if call_status is not None:
        attributes["sip.callStatus"] = call_status
    if sip_code is not None:
        attributes |= {"sip.statusCode": str(sip_code), "sip.status": f"status {sip_code}"}
    return attributes


def test_agent_and_webhook_agree_on_every_unanswered_leg() -> None:
    disagreements = []
    for reason, state, code in itertools.product(REASONS, CALL_STATES, SIP_CODES):
        attributes = _attributes(state, code)
        agent = unanswered_outcome(reason, attributes)
        api = left_before_answer_outcome(reason, attributes)
        agent_view = (agent.status, agent.reason, agent.sip_status_code, agent.sip_status)
        api_view = (api.status, api.reason, api.sip_status_code, api.sip_status)
        if agent_view != api_view:
            disagreements.append((reason, state, code, agent_view, api_view))
    assert disagreements == []


def test_every_unanswered_outcome_is_in_the_contract_vocabulary() -> None:
    statuses, reasons = set(get_args(EndedStatus)), set(get_args(EndReason))
    for reason, state, code in itertools.product(REASONS, CALL_STATES, SIP_CODES):
        outcome = left_before_answer_outcome(reason, _attributes(state, code))
        assert outcome.status in statuses and outcome.reason in reasons, (reason, state, code)
