"""Worker settings, read once from the environment.

Everything an operator can tune lives here, so docs/agents.md and .env.example have one
source to list. Per-call values in the dispatch metadata (the agent's pipeline, timeouts)
win over these defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_AGENT_NAME = "outdial-agent"
# A workspace's own model key named `ref` is OUTDIAL_MODEL_KEY_<WORKSPACE ID>_<REF>.
MODEL_KEY_PREFIX = "OUTDIAL_MODEL_KEY_"


@dataclass(frozen=True)
class StageDefaults:
    """Defaults for one pipeline stage (LLM, STT or TTS) when the agent config leaves a
    field empty."""

    provider: str = "openai"
    model: str | None = None
    voice: str | None = None
    base_url: str | None = None
    language: str | None = None
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class WorkerSettings:
    livekit_url: str = ""
    livekit_api_key: str = ""
    livekit_api_secret: str = field(default="", repr=False)
    agent_name: str = DEFAULT_AGENT_NAME
    # None keeps livekit-agents' defaults (prod: one per CPU up to 4, dev: 0)
    num_idle_processes: int | None = None
    load_threshold: float = 0.7
    # None keeps livekit-agents' defaults (prod: 8081, dev: a free port)
    health_port: int | None = None
    job_memory_warn_mb: float = 500.0
    job_memory_limit_mb: float = 0.0
    silence_timeout_seconds: float = 30.0
    # added to ring_timeout_seconds: the SIP bridge joins the room, then rings
    ring_timeout_margin_seconds: float = 10.0
    # How long, beyond the ring time, the dial may take to reach the room after agent.ready.
    leg_join_timeout_seconds: float = 60.0
    event_flush_timeout_seconds: float = 5.0
    max_duration_message: str = "I'm sorry, we have reached the time limit for this call. Goodbye."
    silence_message: str = "I haven't heard from you, so I'll end the call now. Goodbye."
    use_amd: bool = False
    llm: StageDefaults = StageDefaults(model="gpt-4o-mini")
    stt: StageDefaults = StageDefaults(model="whisper-1")
    tts: StageDefaults = StageDefaults(model="tts-1", voice="alloy")
    # Workspaces' own model keys, `OUTDIAL_MODEL_KEY_*` variable -> key (see model_keys.py):
    # read from this worker's environment only, so no key travels in Redis or a dispatch.
    model_keys: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if env is None else env
        defaults = cls()

        def text(name: str, default: str) -> str:
            return env.get(name) or default

        def optional(name: str) -> str | None:
            return env.get(name) or None

        def number(name: str, default: float) -> float:
            raw = env.get(name)
            return float(raw) if raw else default

        openai_key = optional("OPENAI_API_KEY")

        def stage(prefix: str, base: StageDefaults) -> StageDefaults:
            provider = text(f"{prefix}_PROVIDER", base.provider)
            is_openai = provider == "openai"
            return StageDefaults(
                provider=provider,
                # the built-in model names are OpenAI's; other plugins keep their own
                model=optional(f"{prefix}_MODEL") or (base.model if is_openai else None),
                voice=optional(f"{prefix}_VOICE") or (base.voice if is_openai else None),
                base_url=optional(f"{prefix}_BASE_URL"),
                language=optional(f"{prefix}_LANGUAGE"),
                # other plugins read their own variable (DEEPGRAM_API_KEY, ...) when unset
                api_key=optional(f"{prefix}_API_KEY") or (openai_key if is_openai else None),
            )

        idle = optional("OUTDIAL_AGENT_NUM_IDLE_PROCESSES")
        return cls(
            livekit_url=text("LIVEKIT_URL", ""),
            livekit_api_key=text("LIVEKIT_API_KEY", ""),
            livekit_api_secret=text("LIVEKIT_API_SECRET", ""),
            agent_name=text("OUTDIAL_AGENT_NAME", DEFAULT_AGENT_NAME),
            num_idle_processes=int(idle) if idle else None,
            load_threshold=number("OUTDIAL_AGENT_LOAD_THRESHOLD", defaults.load_threshold),
            health_port=int(port) if (port := optional("OUTDIAL_AGENT_HEALTH_PORT")) else None,
            job_memory_warn_mb=number("OUTDIAL_AGENT_JOB_MEMORY_WARN_MB", 500.0),
            job_memory_limit_mb=number("OUTDIAL_AGENT_JOB_MEMORY_LIMIT_MB", 0.0),
            silence_timeout_seconds=number(
                "OUTDIAL_AGENT_SILENCE_TIMEOUT_SECONDS", defaults.silence_timeout_seconds
            ),
            ring_timeout_margin_seconds=number(
                "OUTDIAL_AGENT_RING_TIMEOUT_MARGIN_SECONDS", defaults.ring_timeout_margin_seconds
            ),
            leg_join_timeout_seconds=number(
                "OUTDIAL_AGENT_LEG_JOIN_TIMEOUT_SECONDS", defaults.leg_join_timeout_seconds
            ),
            event_flush_timeout_seconds=number(
                "OUTDIAL_AGENT_EVENT_FLUSH_TIMEOUT_SECONDS", defaults.event_flush_timeout_seconds
            ),
            max_duration_message=text(
                "OUTDIAL_AGENT_MAX_DURATION_MESSAGE", defaults.max_duration_message
            ),
            silence_message=text("OUTDIAL_AGENT_SILENCE_MESSAGE", defaults.silence_message),
            use_amd=env.get("OUTDIAL_AGENT_AMD", "").lower() in ("1", "true", "yes", "on"),
            llm=stage("OUTDIAL_LLM", defaults.llm),
            stt=stage("OUTDIAL_STT", defaults.stt),
            tts=stage("OUTDIAL_TTS", defaults.tts),
            model_keys={
                name: value
                for name, value in env.items()
                if name.startswith(MODEL_KEY_PREFIX) and value
            },
        )
