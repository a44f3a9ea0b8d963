"""The AgentSession for one call: STT, LLM and TTS from the agent config, Silero VAD from
the prewarmed process."""

from __future__ import annotations

from livekit.agents import AgentSession, vad

from .context import CallContext
from .providers import build_stage


def build_session(call: CallContext, voice_activity: vad.VAD | None) -> AgentSession:
    pipeline = call.agent.pipeline
    settings = call.settings
    silence = call.agent.silence_timeout_seconds or settings.silence_timeout_seconds
    return AgentSession(
        stt=build_stage("stt", pipeline.stt, settings.stt),
        llm=build_stage("llm", pipeline.llm, settings.llm),
        tts=build_stage("tts", pipeline.tts, settings.tts),
        vad=voice_activity,
        # "away" after this long with neither side speaking: the silence timeout
        user_away_timeout=silence,
    )
