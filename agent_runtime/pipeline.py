"""The AgentSession for one call, and how it meets the room.

Production: STT, LLM and TTS from the agent config, Silero VAD from the prewarmed process,
bound to the room's audio for the SIP participant. `SessionPlan` is the one seam: a call
runtime given another plan (tests: a text-only session with a scripted LLM, bound to no
room) runs exactly the same call logic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from livekit import rtc
from livekit.agents import Agent, AgentSession, vad
from livekit.agents.voice import room_io

from .context import CallContext
from .providers import build_stage


def silence_timeout_seconds(call: CallContext) -> float:
    """After this long with neither side speaking the callee is "away": the silence
    timeout. The agent's own value wins over the worker's."""
    return call.agent.silence_timeout_seconds or call.settings.silence_timeout_seconds


def build_session(call: CallContext, voice_activity: vad.VAD | None) -> AgentSession[Any]:
    pipeline = call.agent.pipeline
    settings = call.settings
    # the workspace id is the API's, from the dispatch: a workspace names only its own keys
    stage = partial(
        build_stage, workspace_id=call.dispatch.workspace_id, model_keys=settings.model_keys
    )
    return AgentSession(
        stt=stage("stt", pipeline.stt, settings.stt),
        llm=stage("llm", pipeline.llm, settings.llm),
        tts=stage("tts", pipeline.tts, settings.tts),
        vad=voice_activity,
        user_away_timeout=silence_timeout_seconds(call),
    )


async def start_in_room(
    session: AgentSession[Any], agent: Agent, room: rtc.Room, sip_identity: str
) -> None:
    """Start `session` on the room's audio for the SIP participant, which need not have
    joined yet: RoomIO links it when it does. The call runtime, not RoomIO, decides when
    the call is over, so the session stays open when the leg leaves."""
    await session.start(
        agent,
        room=room,
        room_options=room_io.RoomOptions(
            participant_identity=sip_identity, close_on_disconnect=False
        ),
    )


@dataclass(frozen=True)
class SessionPlan:
    """How a call gets its session: `build` makes it (before anything is said), `start`
    starts it with the agent, bound to the room for the SIP identity or not at all."""

    build: Callable[[CallContext, vad.VAD | None], AgentSession[Any]] = build_session
    start: Callable[[AgentSession[Any], Agent, rtc.Room, str], Awaitable[None]] = start_in_room
