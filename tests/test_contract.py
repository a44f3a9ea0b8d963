"""The dispatch contract and its template language."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent_runtime.contract import (
    AgentConfig,
    DispatchMetadata,
    TemplateError,
    render_template,
    template_variables,
)


def test_template_variables_are_listed_once_in_order() -> None:
    assert template_variables("Hi {{ firstName }}, {{x|def}} {{firstName}}") == ["firstName", "x"]


@pytest.mark.parametrize(
    "template", ["{{ first-name }}", "{{", "Hello }}", "{% if x %}", "{{ a.b }}", "{# c #}"]
)
def test_unknown_syntax_is_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        template_variables(template)


def test_rendering_inserts_values_as_data_and_reports_missing() -> None:
    text, missing = render_template(
        "Hi {{name}}, {{city|your city}}! {{unknown}}.{{flag}}",
        {"name": "{{city}}", "flag": True},
    )
    assert text == "Hi {{city}}, your city! .true"
    assert missing == ["unknown"]


def test_contract_round_trips_and_refuses_unknown_versions() -> None:
    contract = DispatchMetadata(
        call_id="c" * 24,
        workspace_id="ws_1",
        room_name="room",
        agent=AgentConfig(id="a", name="A", instructions="x", worker_name="outdial-agent"),
        dynamic_variables={"n": 1},
        metadata={"crm": {"id": 1}},
        to_number="+14155552671",
        sip_participant_identity="sip-c",
        ring_timeout_seconds=30,
        max_duration_seconds=600,
        events_url="http://api/v1/internal/calls/c/events",
        event_token="t",
    )
    assert DispatchMetadata.from_json(contract.to_json()) == contract
    raw = contract.model_dump() | {"version": 2}
    with pytest.raises(ValidationError):
        DispatchMetadata.model_validate(raw)
