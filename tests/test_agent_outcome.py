"""Pure decisions of the call runtime, against the real livekit enum values and names."""

from __future__ import annotations

import json

import pytest
from livekit import rtc
from livekit.agents import ChatContext
from livekit.protocol.models import DisconnectReason

from agent_runtime import WorkerSettings
from agent_runtime.contract import DispatchMetadata
from agent_runtime.dispatch import DispatchFailure, parse_dispatch
from agent_runtime.outcome import (
    SIP_CALL_STATUS_ATTRIBUTE,
    answered_outcome,
    ended_event,
    is_answered,
    not_joined_outcome,
    unanswered_outcome,
)
from agent_runtime.providers import ProviderError, StageSpec, build_stage
from agent_runtime.telephony import sip_transfer_uri
from agent_runtime.transcript import transcript_turns


def test_attribute_name_is_livekits() -> None:
    # livekit/protocol livekit/attrs.go AttrSIPCallStatus; livekit-agents AMD gates on it too
    from livekit.agents.voice.amd import detector

    assert SIP_CALL_STATUS_ATTRIBUTE == detector._SIP_CALL_STATUS_ATTR == "sip.callStatus"


@pytest.mark.parametrize(
    ("status", "answered"),
    [("dialing", False), ("ringing", False), ("automation", False), ("active", True)],
)
def test_agent_speaks_only_once_active(status: str, answered: bool) -> None:
    assert is_answered({"sip.callStatus": status}) is answered
    assert is_answered({}) is False


def test_rtc_and_protocol_reasons_agree() -> None:
    for name in ("USER_REJECTED", "USER_UNAVAILABLE", "SIP_TRUNK_FAILURE"):
        assert rtc.DisconnectReason.Value(name) == DisconnectReason.Value(name)


@pytest.mark.parametrize(
    ("reason", "call_status", "status", "end_reason"),
    [
        (DisconnectReason.USER_REJECTED, "ringing", "busy", "busy"),
        (DisconnectReason.USER_UNAVAILABLE, "ringing", "no_answer", "no_answer"),
        (DisconnectReason.SIP_TRUNK_FAILURE, "dialing", "failed", "trunk_failure"),
        # livekit/sip may report a carrier failure without a reason: left while dialing
        (None, "dialing", "failed", "trunk_failure"),
        (DisconnectReason.CLIENT_INITIATED, "dialing", "failed", "trunk_failure"),
        # rang and stopped without a reason
        (DisconnectReason.CLIENT_INITIATED, "ringing", "no_answer", "no_answer"),
        (DisconnectReason.ROOM_DELETED, "ringing", "failed", "error"),
    ],
)
def test_unanswered_outcome(
    reason: int | None, call_status: str, status: str, end_reason: str
) -> None:
    outcome = unanswered_outcome(reason, {"sip.callStatus": call_status})
    assert (outcome.status, outcome.reason) == (status, end_reason)
    assert outcome.sip_status_code is None


def test_sip_status_attributes_decide_when_reason_is_vague() -> None:
    attrs = {"sip.callStatus": "ringing", "sip.statusCode": "486", "sip.status": "Busy Here"}
    outcome = unanswered_outcome(DisconnectReason.CLIENT_INITIATED, attrs)
    assert (outcome.status, outcome.reason) == ("busy", "busy")
    assert (outcome.sip_status_code, outcome.sip_status) == (486, "Busy Here")
    event_type, data = ended_event(outcome, 0)
    assert event_type == "call.ended"
    assert data["sip_status_code"] == 486 and data["duration_seconds"] == 0


def test_a_leg_that_never_joined_is_failed_and_reported_as_call_failed() -> None:
    outcome = not_joined_outcome()
    assert (outcome.status, outcome.reason) == ("failed", "trunk_failure")
    assert ended_event(outcome, 0)[0] == "call.failed"


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("hangup_by_callee", "completed"),
        ("hangup_by_agent", "completed"),
        ("voicemail", "completed"),
        ("max_duration", "completed"),
        ("silence_timeout", "completed"),
        ("transferred", "completed"),
        ("error", "failed"),
        ("agent_failed", "failed"),
    ],
)
def test_answered_outcome(reason: str, status: str) -> None:
    outcome = answered_outcome(reason)  # type: ignore[arg-type]
    assert outcome.status == status and outcome.reason == reason
    event_type, data = ended_event(outcome, 12.3456)
    assert event_type == ("call.failed" if status == "failed" else "call.ended")
    assert data["duration_seconds"] == 12.346


def _valid_dispatch() -> dict:
    return {
        "call_id": "call_1",
        "workspace_id": "ws_1",
        "room_name": "r1",
        "agent": {"id": "a", "name": "n", "instructions": "hi", "worker_name": "w"},
        "to_number": "+15551230000",
        "sip_participant_identity": "sip-1",
        "ring_timeout_seconds": 30,
        "max_duration_seconds": 600,
        "events_url": "http://127.0.0.1/v1/internal/calls/call_1/events",
        "event_token": "tok",
    }


def test_parse_valid_dispatch() -> None:
    parsed = parse_dispatch(json.dumps(_valid_dispatch()))
    assert isinstance(parsed, DispatchMetadata) and parsed.call_id == "call_1"


def test_parse_unknown_version_is_reportable() -> None:
    parsed = parse_dispatch(json.dumps({**_valid_dispatch(), "version": 99}))
    assert isinstance(parsed, DispatchFailure)
    assert parsed.reportable and parsed.call_id == "call_1" and "version" in parsed.message


@pytest.mark.parametrize("raw", ["", "not json", "[1, 2]", '{"agent": 1}'])
def test_parse_garbage_is_not_reportable(raw: str) -> None:
    parsed = parse_dispatch(raw)
    assert isinstance(parsed, DispatchFailure) and not parsed.reportable


def test_transfer_uri() -> None:
    assert sip_transfer_uri("+15550001111") == "tel:+15550001111"
    assert sip_transfer_uri("sip:desk@pbx.example") == "sip:desk@pbx.example"


def test_transcript_turns_keep_order_and_roles() -> None:
    chat = ChatContext.empty()
    chat.add_message(role="system", content="secret instructions")
    chat.add_message(role="assistant", content="Hello!")
    chat.add_message(role="user", content="Hi, who is this?")
    turns = transcript_turns(chat)
    assert [(t["role"], t["text"]) for t in turns] == [
        ("assistant", "Hello!"),
        ("user", "Hi, who is this?"),
    ]
    assert all(t["started_at"] <= t["ended_at"] for t in turns)


def test_settings_from_env() -> None:
    settings = WorkerSettings.from_env(
        {
            "OUTDIAL_AGENT_NAME": "custom",
            "OUTDIAL_AGENT_LOAD_THRESHOLD": "0.5",
            "OPENAI_API_KEY": "sk-x",
            "OUTDIAL_LLM_BASE_URL": "http://vllm:8000/v1",
            "OUTDIAL_LLM_MODEL": "llama3",
            "OUTDIAL_STT_PROVIDER": "deepgram",
        }
    )
    assert settings.agent_name == "custom" and settings.load_threshold == 0.5
    assert settings.llm.base_url == "http://vllm:8000/v1" and settings.llm.model == "llama3"
    assert settings.llm.api_key == "sk-x"
    # another provider does not inherit the OpenAI key or model names
    assert settings.stt.provider == "deepgram" and settings.stt.api_key is None
    assert settings.stt.model is None
    assert WorkerSettings.from_env({}).agent_name == "outdial-agent"


def test_provider_registry_builds_openai_compatible_stages() -> None:
    from livekit.plugins import openai

    from agent_runtime.contract import ModelConfig

    defaults = WorkerSettings.from_env(
        {
            "OUTDIAL_LLM_BASE_URL": "http://127.0.0.1:11434/v1",
            "OUTDIAL_TTS_BASE_URL": "http://127.0.0.1:8880/v1",
        }
    )
    model = build_stage("llm", ModelConfig(model="qwen2.5"), defaults.llm)
    assert isinstance(model, openai.LLM) and model.model == "qwen2.5"
    assert isinstance(build_stage("tts", ModelConfig(), defaults.tts), openai.TTS)
    spec = StageSpec.resolve(ModelConfig(provider="openai"), defaults.llm)
    assert spec.base_url == "http://127.0.0.1:11434/v1"


def test_provider_registry_errors_are_clear() -> None:
    from agent_runtime.contract import ModelConfig

    defaults = WorkerSettings().llm
    with pytest.raises(ProviderError, match="unknown llm provider 'nope'"):
        build_stage("llm", ModelConfig(provider="nope"), defaults)
    with pytest.raises(ProviderError, match="pip install"):
        build_stage("tts", ModelConfig(provider="cartesia"), WorkerSettings().tts)
