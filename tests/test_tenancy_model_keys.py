"""The agent worker's own defence (issue 10, items 1 and 4): whatever the dispatch says, the
operator's model key goes only to the operator's endpoint, a workspace's key is looked up by
the workspace id the API wrote, a referenced key the worker lacks fails the call before
anyone is rung, and a transfer goes only to an E.164 number or a `sip:` URI.

The API's allowlists are in tests/test_tenancy_agent_policy.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from livekit import api
from livekit.agents import AgentSession, vad
from livekit.plugins import openai

from agent_runtime import CallContext, WorkerSettings
from agent_runtime.contract import ModelConfig, PipelineConfig
from agent_runtime.model_keys import model_key_variable
from agent_runtime.pipeline import build_session
from agent_runtime.providers import ModelKeyError, build_stage
from agent_runtime.telephony import sip_transfer_uri
from tests.call_harness import CallHarness, EventSink, call_dispatch

OPERATOR_KEY = "sk-operator"
OPERATOR_URL = "https://api.openai.com/v1"
ACME_URL = "https://models.acme.example/v1"
ENV = {
    "OPENAI_API_KEY": OPERATOR_KEY,
    "OUTDIAL_LLM_BASE_URL": OPERATOR_URL,
    "OUTDIAL_STT_BASE_URL": OPERATOR_URL,
    "OUTDIAL_TTS_BASE_URL": OPERATOR_URL,
    model_key_variable("ws_acme", "acme-openai"): "sk-acme",
}
SETTINGS = WorkerSettings.from_env(ENV)


def sent_key(stage: str, config: ModelConfig, workspace_id: str = "ws_acme") -> str:
    """The key the stage's OpenAI client would send, and assert where it would send it."""
    built = build_stage(
        stage,  # type: ignore[arg-type]
        config,
        getattr(SETTINGS, stage),
        workspace_id=workspace_id,
        model_keys=SETTINGS.model_keys,
    )
    assert isinstance(built, openai.LLM | openai.STT | openai.TTS)
    expected_url = (config.base_url or OPERATOR_URL).rstrip("/")
    assert str(built._client.base_url).rstrip("/") == expected_url
    return str(built._client.api_key)


@pytest.mark.parametrize("stage", ["llm", "stt", "tts"])
def test_the_operators_key_never_goes_to_an_agents_base_url(stage: str) -> None:
    # fails on the old code: a matching provider kept the operator's key for any base_url
    assert sent_key(stage, ModelConfig(base_url="https://attacker.example/v1")) != OPERATOR_KEY
    # the operator's own endpoint (a trailing slash is the same URL) keeps the operator's key
    assert sent_key(stage, ModelConfig()) == OPERATOR_KEY
    assert sent_key(stage, ModelConfig(base_url=OPERATOR_URL + "/")) == OPERATOR_KEY


def test_a_workspace_key_is_found_by_the_dispatchs_workspace_only() -> None:
    mine = ModelConfig(base_url=ACME_URL, api_key_ref="acme-openai")
    assert sent_key("llm", mine) == "sk-acme"
    assert model_key_variable("ws_acme", "acme-openai") == "OUTDIAL_MODEL_KEY_WS_ACME_ACME_OPENAI"
    # another workspace naming acme's key gets nothing, and no call without it
    with pytest.raises(ModelKeyError, match="OUTDIAL_MODEL_KEY_WS_OTHER_ACME_OPENAI"):
        sent_key("llm", mine, workspace_id="ws_other")
    # the key value is never in the settings' repr (logs)
    assert "sk-acme" not in repr(SETTINGS)


@pytest.fixture
async def lkapi(lk: Any) -> AsyncIterator[api.LiveKitAPI]:
    client = api.LiveKitAPI(url=lk.url, api_key=lk.api_key, api_secret=lk.api_secret)
    yield client
    await client.aclose()


@pytest.fixture
async def sink() -> AsyncIterator[EventSink]:
    server = await EventSink().start()
    yield server
    await server.stop()


class RealPipelineHarness(CallHarness):
    """The production session builder (providers and keys), in the test harness."""

    def _build_session(self, call: CallContext, voice: vad.VAD | None) -> AgentSession:
        return build_session(call, voice)


async def test_an_unknown_key_ref_ends_the_call_agent_failed(
    lkapi: api.LiveKitAPI, sink: EventSink
) -> None:
    pipeline = PipelineConfig(llm=ModelConfig(base_url=ACME_URL, api_key_ref="not-here"))
    dispatch = call_dispatch(sink.url, pipeline=pipeline)
    settings = SETTINGS.model_copy(update={"event_flush_timeout_seconds": 3.0})
    harness = await RealPipelineHarness(lkapi, sink, dispatch, settings, []).start()
    events = await harness.finished()
    # never agent.ready: the API dials only after it, so nobody was rung
    assert [event["type"] for event in events] == ["agent.started", "call.failed"]
    data = events[-1]["data"]
    assert (data["status"], data["reason"]) == ("failed", "agent_failed")
    assert "api_key_ref 'not-here'" in data["message"]
    assert model_key_variable(dispatch.workspace_id, "not-here") in data["message"]


def test_a_transfer_goes_only_to_a_number_or_a_sip_uri() -> None:
    assert sip_transfer_uri("+15550001111") == "tel:+15550001111"
    assert sip_transfer_uri("sip:desk@pbx.example") == "sip:desk@pbx.example"
    # fails on the old code, which passed sips:/tel: through and prefixed anything else
    for target in ("tel:+15550001111", "sips:desk@pbx.example", "http://x", "15550001111"):
        with pytest.raises(ValueError, match="neither an E\\.164 number"):
            sip_transfer_uri(target)
