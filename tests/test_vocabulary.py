"""The call vocabulary has one owner (`agent_runtime.contract`): the SIP outcome table, the
Lua scripts, the store, the API and the docs all use it or are checked against it here."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from pathlib import Path
from typing import get_args

import pytest
from livekit.api import ServerError
from livekit.protocol.models import DisconnectReason

from agent_runtime.contract import (
    STATUS_RANK,
    TERMINAL_RANK,
    TERMINAL_STATUSES,
    AgentEvent,
    AgentEventType,
    CallEventType,
    CallStatus,
    EndedStatus,
    EndReason,
    outcome_event_type,
)
from agent_runtime.outcome import answered_outcome, ended_event, not_joined_outcome
from api.services.call_end import end_event
from api.store.call_fields import CALL_STATUSES
from api.store.event_fields import agent_update
from api.store.events import EVENT_STATUS
from api.store.scripts import SCRIPTS
from sip import dial_error_outcome, left_after_answer_outcome, left_before_answer_outcome
from tests.records import stored_call

ROOT = Path(__file__).resolve().parent.parent
SIP_CODES = [None, 180, 302, 400, 403, 404, 408, 415, 480, 486, 487, 500, 503, 600, 603, 604]
CALL_STATES = [None, "dialing", "ringing", "automation"]
REASONS = [None, *DisconnectReason.values()]
TWIRP_CODES = ["resource_exhausted", "permission_denied", "not_found", "canceled", "internal"]


def _attributes(call_status: str | None, sip_code: int | None) -> dict[str, str]:
    attributes = {}
    if call_status is not None:
        attributes["sip.callStatus"] = call_status
    if sip_code is not None:
        attributes |= {"sip.statusCode": str(sip_code), "sip.status": f"status {sip_code}"}
    return attributes


def test_every_sip_outcome_is_in_the_contract_vocabulary() -> None:
    statuses, reasons = set(get_args(EndedStatus)), set(get_args(EndReason))
    outcomes = [
        left_before_answer_outcome(reason, _attributes(state, code))
        for reason, state, code in itertools.product(REASONS, CALL_STATES, SIP_CODES)
    ]
    outcomes += [left_after_answer_outcome(reason) for reason in DisconnectReason.values()]
    for code, sip in itertools.product(TWIRP_CODES, SIP_CODES):
        meta = {"sip_status_code": str(sip), "sip_status": "x"} if sip else None
        outcomes.append(dial_error_outcome(ServerError(code, "refused", status=400, metadata=meta)))
    outcomes += [answered_outcome(reason) for reason in get_args(EndReason)]
    outcomes.append(not_joined_outcome())
    for outcome in outcomes:
        assert outcome.status in statuses and outcome.reason in reasons, outcome


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        (486, "busy", "busy"),
        (404, "failed", "invalid_number"),
        (480, "no_answer", "no_answer"),
        (503, "failed", "trunk_failure"),
    ],
)
def test_a_refused_dial_and_a_reported_leg_get_the_same_outcome_and_event(
    code: int, status: str, reason: str
) -> None:
    meta = {"sip_status_code": str(code), "sip_status": "s"}
    refused = dial_error_outcome(ServerError("x", "refused", status=400, metadata=meta))
    reported = left_before_answer_outcome(None, _attributes("ringing", code))
    assert (refused.status, refused.reason) == (status, reason)
    assert (reported.status, reported.reason) == (status, reason)
    assert ended_event(reported, 0)[0] == outcome_event_type(refused.status)


@pytest.mark.parametrize("code", [486, 404, 480, 503, None])
def test_an_end_records_the_same_on_the_call_whoever_reports_it(code: int | None) -> None:
    """The agent's end event (`agent_update`) and Outdial's own (`end_event`) write the same
    call fields for one outcome; only the agent knows the duration, only Outdial words an
    error message."""
    outcome = left_before_answer_outcome(None, _attributes("ringing", code))
    event_type, data = ended_event(outcome, 12.3456)
    reported = agent_update(AgentEvent(type=event_type, data=data))
    own = end_event(outcome).call_update
    assert reported.duration_seconds == 12.346
    assert replace(reported, duration_seconds=None) == replace(own, error_message=None)
    assert reported.end_reason == outcome.reason


def test_lua_rank_table_is_the_contracts() -> None:
    table = re.search(r"local RANK = \{([^}]*)\}", SCRIPTS["apply_event"]).group(1)  # type: ignore[union-attr]
    parsed = {name: int(rank) for name, rank in re.findall(r"(\w+)=(\d+)", table)}
    assert parsed == STATUS_RANK
    assert f"local TERMINAL = {TERMINAL_RANK}" in SCRIPTS["apply_event"]
    # ranks grow along the contract's order, terminal statuses last and equal
    ordered = [STATUS_RANK[s] for s in get_args(CallStatus)]
    assert ordered == sorted(ordered)
    assert {s for s, r in STATUS_RANK.items() if r == TERMINAL_RANK} == TERMINAL_STATUSES


def test_the_store_and_the_api_use_the_contracts_statuses() -> None:
    assert get_args(CallStatus) == CALL_STATUSES
    every_transition = stored_call(**{f"ts_{s}": 1 for s in get_args(CallStatus)})
    assert tuple(every_transition.transitions) == get_args(CallStatus)
    moved_to = {status for status in EVENT_STATUS.values() if status is not None}
    assert moved_to <= set(get_args(CallStatus))
    # every non-terminal status after `queued` is reached by some event
    assert set(get_args(CallStatus)) - TERMINAL_STATUSES - {"queued"} <= moved_to


def test_every_event_type_has_its_status_and_its_docs_row() -> None:
    assert set(EVENT_STATUS) == {*get_args(CallEventType), *get_args(AgentEventType)}
    text = (ROOT / "docs" / "callbacks.md").read_text()
    section = text.split("## Event types", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    documented = [name for cell in first_cells for name in re.findall(r"`([a-z_.]+)`", cell)]
    assert sorted(documented) == sorted(EVENT_STATUS)


def test_the_docs_end_reason_table_lists_exactly_the_contracts_reasons() -> None:
    text = (ROOT / "docs" / "callbacks.md").read_text()
    section = text.split("## End reasons", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = [re.match(r"\| `([a-z_]+)`", row).group(1) for row in rows]  # type: ignore[union-attr]
    assert sorted(documented) == sorted(get_args(EndReason))
    assert len(documented) == len(set(documented))


def test_every_test_the_truth_table_names_exists() -> None:
    text = (ROOT / "docs" / "callbacks.md").read_text()
    section = text.split("## Truth table", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", section)
    assert len(named) >= 20
    for path, name in named:
        source = (ROOT / path).read_text()
        assert re.search(rf"def {name}\(", source), f"{path}::{name} is not a test"
