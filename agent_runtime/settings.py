"""Worker settings, read once from the environment and validated as a whole.

Everything an operator can tune lives here, so docs/agents.md and .env.example have one
source to list. Per-call values in the dispatch metadata (the agent's pipeline, timeouts)
win over these defaults. A value that does not parse stops the worker before it registers,
with a one-line message that names the variable (`environment_error`): a typo must not
become a default nobody chose.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .environment import environment_problems

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


# The one statement of the default pipeline: .env.example, deploy/k8s/configmap.yaml and
# docs/agents.md repeat these values, and tests/test_model_defaults.py holds them to it.
DEFAULT_STAGES = {
    "llm": StageDefaults(model="gpt-4.1-mini"),
    "stt": StageDefaults(model="gpt-4o-mini-transcribe"),
    "tts": StageDefaults(model="gpt-4o-mini-tts", voice="ash"),
}


class WorkerSettings(BaseSettings):
    """Built from the environment by `from_env()`; built directly, it takes only the values
    given (tests), never the process environment."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    livekit_url: str = Field("", alias="LIVEKIT_URL")
    livekit_api_key: str = Field("", alias="LIVEKIT_API_KEY")
    livekit_api_secret: str = Field("", alias="LIVEKIT_API_SECRET", repr=False)
    agent_name: str = Field(DEFAULT_AGENT_NAME, alias="OUTDIAL_AGENT_NAME")
    # None keeps livekit-agents' defaults (prod: one per CPU up to 4, dev: 0)
    num_idle_processes: int | None = Field(None, ge=0, alias="OUTDIAL_AGENT_NUM_IDLE_PROCESSES")
    load_threshold: float = Field(0.7, gt=0, alias="OUTDIAL_AGENT_LOAD_THRESHOLD")
    # None keeps livekit-agents' defaults (prod: 8081, dev: a free port)
    health_port: int | None = Field(None, ge=0, le=65535, alias="OUTDIAL_AGENT_HEALTH_PORT")
    job_memory_warn_mb: float = Field(500.0, ge=0, alias="OUTDIAL_AGENT_JOB_MEMORY_WARN_MB")
    job_memory_limit_mb: float = Field(0.0, ge=0, alias="OUTDIAL_AGENT_JOB_MEMORY_LIMIT_MB")
    silence_timeout_seconds: float = Field(
        30.0, ge=0, alias="OUTDIAL_AGENT_SILENCE_TIMEOUT_SECONDS"
    )
    # added to ring_timeout_seconds: the SIP bridge joins the room, then rings
    ring_timeout_margin_seconds: float = Field(
        10.0, ge=0, alias="OUTDIAL_AGENT_RING_TIMEOUT_MARGIN_SECONDS"
    )
    # How long, beyond the ring time, the dial may take to reach the room after agent.ready.
    leg_join_timeout_seconds: float = Field(
        60.0, ge=0, alias="OUTDIAL_AGENT_LEG_JOIN_TIMEOUT_SECONDS"
    )
    event_flush_timeout_seconds: float = Field(
        5.0, ge=0, alias="OUTDIAL_AGENT_EVENT_FLUSH_TIMEOUT_SECONDS"
    )
    max_duration_message: str = Field(
        "I'm sorry, we have reached the time limit for this call. Goodbye.",
        alias="OUTDIAL_AGENT_MAX_DURATION_MESSAGE",
    )
    silence_message: str = Field(
        "I haven't heard from you, so I'll end the call now. Goodbye.",
        alias="OUTDIAL_AGENT_SILENCE_MESSAGE",
    )
    # A metered call asks for its next minute this long before its minutes run out.
    reservation_lead_seconds: float = Field(
        15.0, ge=0, alias="OUTDIAL_AGENT_RESERVATION_LEAD_SECONDS"
    )
    balance_exhausted_message: str = Field(
        "I'm sorry, there are no more minutes available for this call. Goodbye.",
        alias="OUTDIAL_AGENT_BALANCE_EXHAUSTED_MESSAGE",
    )
    # Said when the callee asks not to be called again and the model gives no goodbye.
    opt_out_message: str = Field(
        "Understood, we will not call you again. Goodbye.",
        alias="OUTDIAL_AGENT_OPT_OUT_MESSAGE",
    )
    use_amd: bool = Field(False, alias="OUTDIAL_AGENT_AMD")
    # OUTDIAL_<STAGE>_{PROVIDER,MODEL,VOICE,BASE_URL,LANGUAGE,API_KEY} (see `_stage`)
    llm: StageDefaults = DEFAULT_STAGES["llm"]
    stt: StageDefaults = DEFAULT_STAGES["stt"]
    tts: StageDefaults = DEFAULT_STAGES["tts"]
    # Workspaces' own model keys, `OUTDIAL_MODEL_KEY_*` variable -> key (see model_keys.py):
    # read from this worker's environment only, so no key travels in Redis or a dispatch.
    model_keys: Mapping[str, str] = Field(default_factory=dict, repr=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `from_env` reads the environment: it needs all of it (the stage variables and the
        # model keys are families of names), and tests hand it an environment of their own.
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        """The settings in `env` (the process environment by default). An empty variable
        counts as unset. Raises `ValidationError`; `environment_error` words it."""
        variables = {
            name: value for name, value in (os.environ if env is None else env).items() if value
        }
        openai_key = variables.get("OPENAI_API_KEY")
        values: dict[str, Any] = {
            field.alias: variables[field.alias]
            for field in cls.model_fields.values()
            if field.alias in variables
        }
        for stage, base in DEFAULT_STAGES.items():
            values[stage] = _stage(variables, f"OUTDIAL_{stage.upper()}", base, openai_key)
        values["model_keys"] = {
            name: value for name, value in variables.items() if name.startswith(MODEL_KEY_PREFIX)
        }
        return cls.model_validate(values)


def _stage(
    variables: Mapping[str, str], prefix: str, base: StageDefaults, openai_key: str | None
) -> StageDefaults:
    provider = variables.get(f"{prefix}_PROVIDER", base.provider)
    is_openai = provider == "openai"
    return StageDefaults(
        provider=provider,
        # the built-in model names are OpenAI's; other plugins keep their own
        model=variables.get(f"{prefix}_MODEL") or (base.model if is_openai else None),
        voice=variables.get(f"{prefix}_VOICE") or (base.voice if is_openai else None),
        base_url=variables.get(f"{prefix}_BASE_URL"),
        language=variables.get(f"{prefix}_LANGUAGE"),
        # other plugins read their own variable (DEEPGRAM_API_KEY, ...) when unset
        api_key=variables.get(f"{prefix}_API_KEY") or (openai_key if is_openai else None),
    )


def environment_error(error: ValidationError) -> str:
    """One line for the operator: each bad variable and what it must be, its value unless
    it may be a secret (`environment_problems`)."""
    return "outdial agent: invalid environment, refusing to start: " + environment_problems(error)
