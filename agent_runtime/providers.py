"""The voice pipeline's model providers: one registry of (stage, name) -> factory.

OpenAI-compatible endpoints (OpenAI, vLLM, Ollama, local speech servers via `base_url`)
ship with Outdial. Other providers are optional extras: their livekit plugin is imported
only when an agent asks for it, with an install hint if it is missing.

Invariant: the operator's key (`OUTDIAL_<STAGE>_API_KEY`, `OPENAI_API_KEY`) is passed only
to the operator's configured base URL of that stage, or the provider's default when none is
configured, whatever `base_url` the dispatch names. Another `base_url` gets the workspace's
own key (`api_key_ref`, see model_keys.py) or a placeholder; a referenced key this worker
does not hold fails the call (`ModelKeyError`) instead of calling without it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, ModuleType
from typing import Any, Literal

from livekit.agents import llm, stt, tts

from .contract import ModelConfig
from .model_keys import model_key_variable
from .settings import StageDefaults, WorkerSettings

Stage = Literal["llm", "stt", "tts"]
# local OpenAI-compatible servers ignore the key, but the openai client insists on one
_PLACEHOLDER_KEY = "not-needed"


class ProviderError(ValueError):
    """An agent names a provider that is unknown or whose plugin is not installed."""


class ModelKeyError(ProviderError):
    """An agent references a workspace key (`api_key_ref`) that this worker does not hold."""


def _same_url(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.rstrip("/") == b.rstrip("/")


@dataclass(frozen=True)
class StageSpec:
    """One stage's effective settings: the agent config over the worker's defaults."""

    provider: str
    model: str | None
    voice: str | None
    base_url: str | None
    language: str | None
    api_key: str | None

    @classmethod
    def resolve(
        cls, config: ModelConfig, defaults: StageDefaults, own_key: str | None = None
    ) -> StageSpec:
        """`own_key` is the workspace's key for `config.api_key_ref`, already looked up."""
        same_provider = config.provider == defaults.provider
        # the operator's key follows the operator's endpoint, never the agent's base_url
        operators_endpoint = same_provider and (
            config.base_url is None or _same_url(config.base_url, defaults.base_url)
        )
        operators_key = defaults.api_key if operators_endpoint else None
        return cls(
            provider=config.provider,
            # a model or URL meant for another provider would be wrong here
            model=config.model or (defaults.model if same_provider else None),
            voice=config.voice or (defaults.voice if same_provider else None),
            base_url=config.base_url or (defaults.base_url if same_provider else None),
            language=config.language or defaults.language,
            api_key=own_key if config.api_key_ref else operators_key,
        )

    def kwargs(self, *names: str) -> dict[str, Any]:
        """The named fields that are set: a plugin's own default wins over an empty field."""
        return {name: getattr(self, name) for name in names if getattr(self, name)}


def _plugin(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"livekit.plugins.{name}")
    except ImportError as exc:
        raise ProviderError(
            f"provider {name!r} needs its plugin: pip install 'livekit-agents[{name}]'"
        ) from exc


def _openai_key(spec: StageSpec) -> dict[str, Any]:
    key = spec.api_key or (_PLACEHOLDER_KEY if spec.base_url else None)
    return {"api_key": key} if key else {}


def _openai_llm(spec: StageSpec) -> llm.LLM[Any]:
    model: llm.LLM[Any] = _plugin("openai").LLM(
        **spec.kwargs("model", "base_url"), **_openai_key(spec)
    )
    return model


def _openai_stt(spec: StageSpec) -> stt.STT[Any]:
    # a self-hosted endpoint speaks the plain transcription API, not OpenAI's realtime one
    realtime = {"use_realtime": False} if spec.base_url else {}
    model: stt.STT[Any] = _plugin("openai").STT(
        **spec.kwargs("model", "base_url", "language"), **realtime, **_openai_key(spec)
    )
    return model


def _openai_tts(spec: StageSpec) -> tts.TTS[Any]:
    model: tts.TTS[Any] = _plugin("openai").TTS(
        **spec.kwargs("model", "voice", "base_url"), **_openai_key(spec)
    )
    return model


def _named(plugin: str, cls: str, **arguments: str) -> Callable[[StageSpec], Any]:
    """A factory passing the set spec fields to `plugin.cls`, as `{argument: field}`."""

    def build(spec: StageSpec) -> Any:
        values = {arg: getattr(spec, field) for arg, field in arguments.items()}
        return getattr(_plugin(plugin), cls)(**{k: v for k, v in values.items() if v})

    build.__name__ = f"{plugin}_{cls.lower()}"
    return build


_MODEL_KEY = {"model": "model", "api_key": "api_key"}
_LANG = {"language": "language"}

PROVIDERS: dict[tuple[Stage, str], Callable[[StageSpec], Any]] = {
    ("llm", "openai"): _openai_llm,
    ("stt", "openai"): _openai_stt,
    ("tts", "openai"): _openai_tts,
    ("llm", "anthropic"): _named("anthropic", "LLM", **_MODEL_KEY),
    ("llm", "groq"): _named("groq", "LLM", **_MODEL_KEY),
    ("stt", "deepgram"): _named("deepgram", "STT", **_MODEL_KEY, **_LANG),
    ("tts", "deepgram"): _named("deepgram", "TTS", **_MODEL_KEY),
    ("stt", "cartesia"): _named("cartesia", "STT", **_MODEL_KEY, **_LANG),
    ("tts", "cartesia"): _named("cartesia", "TTS", **_MODEL_KEY, **_LANG, voice="voice"),
    ("stt", "elevenlabs"): _named("elevenlabs", "STT", api_key="api_key"),
    ("tts", "elevenlabs"): _named("elevenlabs", "TTS", **_MODEL_KEY, voice_id="voice"),
}


def unusable_providers(settings: WorkerSettings) -> list[str]:
    """What makes the worker's default pipeline fail every call before any key is asked
    for: a provider its stage does not have, or one whose plugin is not installed."""
    problems = []
    for stage in ("llm", "stt", "tts"):
        provider = getattr(settings, stage).provider
        variable = f"OUTDIAL_{stage.upper()}_PROVIDER"
        if (stage, provider) not in PROVIDERS:
            known = ", ".join(sorted(name for kind, name in PROVIDERS if kind == stage))
            problems.append(f"{variable}={provider!r}: no such {stage} provider (known: {known})")
        elif importlib.util.find_spec(f"livekit.plugins.{provider}") is None:
            install = f"pip install 'livekit-agents[{provider}]'"
            problems.append(f"{variable}={provider!r} needs its plugin: {install}")
    return problems


def _own_key(
    stage: Stage, config: ModelConfig, workspace_id: str, model_keys: Mapping[str, str]
) -> str | None:
    if config.api_key_ref is None:
        return None
    variable = model_key_variable(workspace_id, config.api_key_ref)
    key = model_keys.get(variable)
    if not key:
        raise ModelKeyError(
            f"pipeline.{stage}.api_key_ref {config.api_key_ref!r}: the agent worker holds no "
            f"such key for this workspace (the operator sets {variable})"
        )
    return key


def build_stage(
    stage: Stage,
    config: ModelConfig,
    defaults: StageDefaults,
    *,
    workspace_id: str = "",
    model_keys: Mapping[str, str] = MappingProxyType({}),
) -> Any:
    """Instantiate the plugin object for one pipeline stage of `workspace_id`'s call;
    `model_keys` are the worker's `OUTDIAL_MODEL_KEY_*` variables."""
    spec = StageSpec.resolve(config, defaults, _own_key(stage, config, workspace_id, model_keys))
    factory = PROVIDERS.get((stage, spec.provider))
    if factory is None:
        known = sorted(name for kind, name in PROVIDERS if kind == stage)
        raise ProviderError(f"unknown {stage} provider {spec.provider!r}; known: {known}")
    return factory(spec)
