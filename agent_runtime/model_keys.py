"""Which model keys the worker needs before it may take calls.

Invariant: a worker whose default LLM, STT or TTS provider is a hosted API does not start
without a key for it. Without one the worker registers, LiveKit dispatches calls to it,
the callee answers, and the model requests fail: the callee hears nobody. Refusing to
start, naming the variable, turns that silent failure into a restart loop whose log says
what to set.

A stage needs no key when it points at an OpenAI-compatible server on this machine or
network (loopback or private address, a single-label name such as a compose service, or a
local domain): such servers ignore the key and the worker sends a placeholder.

A workspace's own key (an agent's `pipeline.<stage>.api_key_ref`) is read from the
worker's environment as `OUTDIAL_MODEL_KEY_<WORKSPACE ID>_<REF>`: the workspace id comes
from the dispatch the API wrote, so a workspace can only ever name its own keys, and no key
value travels through Redis, the dispatch metadata or the API.

Pure functions over `WorkerSettings` and the environment: no livekit import, so the check
runs before any plugin loads.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .settings import MODEL_KEY_PREFIX, StageDefaults, WorkerSettings

# The variable each provider's livekit plugin reads when Outdial passes no key (the
# plugins' own defaults; OUTDIAL_<STAGE>_API_KEY is passed explicitly and wins).
PROVIDER_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "groq": "GROQ_API_KEY",
    "deepgram": "DEEPGRAM_API_KEY",
    "cartesia": "CARTESIA_API_KEY",
    "elevenlabs": "ELEVEN_API_KEY",
}

# Names that never leave a private network: a dotted public name is assumed hosted.
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa", ".svc")


def model_key_variable(workspace_id: str, ref: str) -> str:
    """The variable holding workspace `workspace_id`'s key named `ref`: upper case, every
    character other than a letter or digit as `_` (ws_ab12 + acme-openai ->
    OUTDIAL_MODEL_KEY_WS_AB12_ACME_OPENAI)."""
    return MODEL_KEY_PREFIX + re.sub(r"[^A-Z0-9]", "_", f"{workspace_id}_{ref}".upper())


def workspace_model_key(settings: WorkerSettings, workspace_id: str, ref: str) -> str | None:
    """The key a workspace referenced by name, or None when this worker does not hold it."""
    return settings.model_keys.get(model_key_variable(workspace_id, ref))


@dataclass(frozen=True)
class MissingKey:
    """One stage whose hosted provider has no key."""

    stage: str  # "LLM", "STT" or "TTS"
    provider: str
    endpoint: str
    variables: tuple[str, ...]  # any one of them would do

    def message(self) -> str:
        names = " or ".join(self.variables)
        return (
            f"the {self.stage} provider {self.provider!r} at {self.endpoint} is a hosted API "
            f"and no key is set: set {names}"
        )


def is_local_endpoint(base_url: str | None) -> bool:
    """True when `base_url` names a server on this host or private network."""
    if not base_url:
        return False
    host = (urlsplit(base_url).hostname or "").rstrip(".").lower()
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host or host == "localhost" or host.endswith(_LOCAL_SUFFIXES)
    return address.is_private or address.is_loopback or address.is_link_local


def stage_missing_key(
    stage: str, defaults: StageDefaults, env: Mapping[str, str]
) -> MissingKey | None:
    """`defaults`' hosted provider without a key (the console checks an agent's own stage)."""
    own_variable = f"OUTDIAL_{stage}_API_KEY"
    plugin_variable = PROVIDER_KEY_ENV.get(defaults.provider)
    if plugin_variable is None:
        # an unknown provider fails on its own (ProviderError names it); its key is unknown
        return None
    if defaults.provider == "openai":
        # WorkerSettings already resolved OUTDIAL_<STAGE>_API_KEY, then OPENAI_API_KEY
        if defaults.api_key or is_local_endpoint(defaults.base_url):
            return None
        endpoint = defaults.base_url or "OpenAI's default endpoint"
    else:
        if defaults.api_key or env.get(plugin_variable):
            return None
        endpoint = f"{defaults.provider}'s API"
    return MissingKey(stage, defaults.provider, endpoint, (plugin_variable, own_variable))


def missing_model_keys(
    settings: WorkerSettings, env: Mapping[str, str] | None = None
) -> list[MissingKey]:
    """The stages of the worker's default pipeline that would fail on every call."""
    env = os.environ if env is None else env
    stages = (("LLM", settings.llm), ("STT", settings.stt), ("TTS", settings.tts))
    found = (stage_missing_key(stage, defaults, env) for stage, defaults in stages)
    return [missing for missing in found if missing is not None]


def startup_error(settings: WorkerSettings, env: Mapping[str, str] | None = None) -> str | None:
    """The message a worker prints instead of starting, or None when it may start."""
    missing = missing_model_keys(settings, env)
    if not missing:
        return None
    lines = [f"outdial agent: refusing to start: {m.message()}" for m in missing]
    lines.append(
        "A self-hosted OpenAI-compatible server that ignores keys accepts any non-empty "
        "value; see docs/agents.md."
    )
    return "\n".join(lines)
