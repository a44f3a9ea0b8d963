"""Outdial's agent worker: runs voice agents on outbound calls dispatched by the API.

Names load on first use: the API and the dispatcher import `agent_runtime.contract`, and
must not pay for livekit-agents, its plugins and their models to do so.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .builtin import OutdialAgent, builtin_agent
    from .call import AgentFactory, run_call
    from .context import CallContext
    from .events import EventReporter, ReporterOptions
    from .outcome import CallOutcome
    from .providers import PROVIDERS, ProviderError
    from .server import create_server, main, prewarm, run_app, run_cli, serve
    from .settings import StageDefaults, WorkerSettings
    from .telephony import CallControl
    from .tools import call_tools

_EXPORTS = {
    "AgentFactory": ".call",
    "CallContext": ".context",
    "CallControl": ".telephony",
    "CallOutcome": ".outcome",
    "EventReporter": ".events",
    "OutdialAgent": ".builtin",
    "PROVIDERS": ".providers",
    "ProviderError": ".providers",
    "ReporterOptions": ".events",
    "StageDefaults": ".settings",
    "WorkerSettings": ".settings",
    "builtin_agent": ".builtin",
    "call_tools": ".tools",
    "create_server": ".server",
    "main": ".server",
    "prewarm": ".server",
    "run_app": ".server",
    "run_call": ".call",
    "run_cli": ".server",
    "serve": ".server",
}
__all__ = [
    "PROVIDERS",
    "AgentFactory",
    "CallContext",
    "CallControl",
    "CallOutcome",
    "EventReporter",
    "OutdialAgent",
    "ProviderError",
    "ReporterOptions",
    "StageDefaults",
    "WorkerSettings",
    "builtin_agent",
    "call_tools",
    "create_server",
    "main",
    "prewarm",
    "run_app",
    "run_call",
    "run_cli",
    "serve",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
