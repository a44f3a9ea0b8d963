"""Outdial's agent worker: runs voice agents on outbound calls dispatched by the API."""

from .builtin_agent import OutdialAgent, builtin_agent
from .call import AgentFactory, run_call
from .context import CallContext
from .events import EventReporter, ReporterOptions
from .outcome import CallOutcome
from .providers import PROVIDERS, ProviderError
from .server import create_server, main, prewarm, run_app, run_cli
from .settings import StageDefaults, WorkerSettings
from .telephony import CallControl
from .tools import call_tools

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
]
