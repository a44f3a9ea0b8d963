"""The built-in agent in text mode (AgentSession without a room) with a scripted LLM
(`tests/scripted_llm.py`), which records the full text the model sees."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from livekit import api
from livekit.agents import AgentSession

from agent_runtime import CallContext, CallControl, WorkerSettings, builtin_agent
from agent_runtime.contract import AgentConfig, DispatchMetadata, VoicemailConfig
from tests.scripted_llm import ScriptedLLM, Step, tool_call

SECRET_METADATA = {"crm_id": "CRM-7731-SECRET", "internal_note": "vip-do-not-say"}


def make_dispatch(**agent_fields: Any) -> DispatchMetadata:
    agent = AgentConfig(
        id="ag_1",
        name="Reminder",
        instructions=agent_fields.pop(
            "instructions",
            "You call {{customer_name}} about an appointment on {{appointment_date}} "
            "with {{doctor|our doctor}}. Clinic code: {{clinic_code}}.",
        ),
        first_message=agent_fields.pop("first_message", "Hi {{customer_name}}!"),
        worker_name="outdial-agent",
        **agent_fields,
    )
    return DispatchMetadata(
        call_id="call_test_1",
        workspace_id="ws_1",
        room_name="room-call_test_1",
        agent=agent,
        dynamic_variables={"customer_name": "Ada Lovelace", "appointment_date": "March 3"},
        metadata=SECRET_METADATA,
        to_number="+15551230000",
        from_number="+15559870000",
        sip_participant_identity="sip-callee",
        ring_timeout_seconds=30,
        max_duration_seconds=600,
        events_url="http://127.0.0.1:9/v1/internal/calls/call_test_1/events",
        event_token="tok",
    )


@pytest.fixture
def settings() -> WorkerSettings:
    return WorkerSettings()


async def run_text_session(call: CallContext, script: list[Step], user_text: str) -> ScriptedLLM:
    model = ScriptedLLM(script)
    async with AgentSession(llm=model) as session:
        call.session = session
        await session.start(builtin_agent(call))
        await session.run(user_input=user_text)
        await asyncio.wait_for(call.wait_hung_up(), 10)
    return model


def test_rendered_instructions_and_missing_variables(settings: WorkerSettings) -> None:
    call = CallContext(make_dispatch(), settings=settings)
    assert "Ada Lovelace" in call.instructions
    assert "March 3" in call.instructions
    assert "with our doctor." in call.instructions  # default used
    assert "Clinic code: ." in call.instructions  # missing -> empty
    assert call.missing_variables == ["clinic_code"]
    assert call.first_message == "Hi Ada Lovelace!"


def test_missing_variables_from_every_template_are_reported_once(
    settings: WorkerSettings,
) -> None:
    dispatch = make_dispatch(
        first_message="Hello {{nickname}}, code {{clinic_code}}",
        voicemail=VoicemailConfig(action="leave_message", message="Call {{callback_number}}"),
    )
    call = CallContext(dispatch, settings=settings)
    assert call.missing_variables == ["clinic_code", "nickname", "callback_number"]
    assert call.voicemail_message == "Call "


async def test_model_sees_variables_but_never_metadata(settings: WorkerSettings) -> None:
    call = CallContext(make_dispatch(), settings=settings)
    model = await run_text_session(call, ["Hello Ada, this is about March 3."], "Who is this?")
    assert model.requests, "the model was never called"
    seen = model.seen_text()
    assert "Ada Lovelace" in seen and "March 3" in seen
    for value in [*SECRET_METADATA.keys(), *SECRET_METADATA.values()]:
        assert value not in seen
    # the metadata is still there for agent code and for events
    assert call.metadata == SECRET_METADATA
    assert call.report("call.answered").data["metadata"] == SECRET_METADATA


async def test_end_call_tool_says_goodbye_and_ends(settings: WorkerSettings) -> None:
    call = CallContext(make_dispatch(), settings=settings)
    script: list[Step] = [tool_call("end_call", goodbye="Goodbye Ada!")]
    model = await run_text_session(call, script, "That's all, bye.")
    assert await asyncio.wait_for(call.wait_ended(), 5) == "hangup_by_agent"
    assert model.requests[0][1], "tools were offered to the model"
    history = [item.text_content for item in call.session.history.items if item.type == "message"]
    assert "Goodbye Ada!" in history


@pytest.fixture
async def lkapi(lk: Any) -> AsyncIterator[api.LiveKitAPI]:
    client = api.LiveKitAPI(url=lk.url, api_key=lk.api_key, api_secret=lk.api_secret)
    yield client
    await client.aclose()


async def test_transfer_call_tool_sends_transfer_request(
    settings: WorkerSettings, lk: Any, lkapi: api.LiveKitAPI
) -> None:
    dispatch = make_dispatch(transfer_to="+15550001111")
    await lkapi.room.create_room(api.CreateRoomRequest(name=dispatch.room_name))
    lk.add_sip_participant(dispatch.room_name, dispatch.sip_participant_identity)
    control = CallControl(lkapi, dispatch.room_name, dispatch.sip_participant_identity)
    call = CallContext(dispatch, settings=settings, control=control)
    await run_text_session(call, [tool_call("transfer_call")], "Can I talk to a human?")
    assert await asyncio.wait_for(call.wait_ended(), 5) == "transferred"
    [transfer] = lk.requests("SIP", "TransferSIPParticipant")
    assert transfer.request.room_name == dispatch.room_name
    assert transfer.request.participant_identity == "sip-callee"
    assert transfer.request.transfer_to == "tel:+15550001111"
    # the runtime drops the leg once it reported the end (tests/test_agent_call_flow.py)
    assert not lk.requests("RoomService", "DeleteRoom")


async def test_failed_transfer_is_said_and_call_continues(
    settings: WorkerSettings, lk: Any, lkapi: api.LiveKitAPI
) -> None:
    dispatch = make_dispatch(transfer_to="+15550001111")
    lk.inject("SIP", "TransferSIPParticipant", code="unavailable")
    control = CallControl(lkapi, dispatch.room_name, dispatch.sip_participant_identity)
    call = CallContext(dispatch, settings=settings, control=control)
    script: list[Step] = [tool_call("transfer_call"), "Sorry, nobody is available right now."]
    model = await run_text_session(call, script, "Transfer me please.")
    assert call.end_reason is None
    # the tool's failure went back to the model, which carried on
    assert "transfer failed" in json.dumps(model.requests[-1][0].to_dict()).lower()


async def test_transfer_tool_only_when_configured(settings: WorkerSettings) -> None:
    without = builtin_agent(CallContext(make_dispatch(), settings=settings))
    with_transfer = builtin_agent(
        CallContext(make_dispatch(transfer_to="+15550001111"), settings=settings)
    )
    names = lambda agent: sorted(t.info.name for t in agent.tools)  # noqa: E731
    assert names(without) == ["end_call", "opt_out", "report_voicemail"]
    assert names(with_transfer) == ["end_call", "opt_out", "report_voicemail", "transfer_call"]


async def test_voicemail_leave_message_then_hang_up(settings: WorkerSettings) -> None:
    dispatch = make_dispatch(
        voicemail=VoicemailConfig(
            action="leave_message", message="Hi {{customer_name}}, please call us back."
        )
    )
    call = CallContext(dispatch, settings=settings)
    sent: list[Any] = []
    call.report = lambda t, d=None: sent.append((t, d))  # type: ignore[method-assign]
    script: list[Step] = [tool_call("report_voicemail", greeting="leave a message")]
    await run_text_session(call, script, "You have reached Ada. Leave a message after the tone.")
    assert await asyncio.wait_for(call.wait_ended(), 5) == "voicemail"
    assert sent[0][0] == "call.voicemail"
    assert sent[0][1]["action"] == "leave_message"
    said = [i.text_content for i in call.session.history.items if i.type == "message"]
    assert "Hi Ada Lovelace, please call us back." in said


async def test_example_reminder_agent_records_answer(settings: WorkerSettings) -> None:
    from agent_runtime.examples.appointment_reminder import build_agent

    call = CallContext(make_dispatch(instructions=""), settings=settings)
    model = ScriptedLLM(
        [
            tool_call("record_answer", will_attend=False, preferred_time="Friday morning"),
            tool_call("end_call", goodbye="Thanks, we'll reschedule. Bye!"),
        ]
    )
    async with AgentSession(llm=model) as session:
        call.session = session
        await session.start(build_agent(call))
        await session.run(user_input="I can't make it, Friday morning would work.")
        assert await asyncio.wait_for(call.wait_ended(), 5) == "hangup_by_agent"
    assert call.results == {"will_attend": False, "preferred_time": "Friday morning"}
    assert "CRM-7731-SECRET" not in model.seen_text()
