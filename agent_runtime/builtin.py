"""The agent every call gets unless a developer brings their own: built from the
AgentConfig snapshot in the dispatch."""

from __future__ import annotations

from livekit.agents import Agent

from .context import CallContext
from .tools import call_tools


class OutdialAgent(Agent):
    def __init__(self, call: CallContext) -> None:
        super().__init__(instructions=call.instructions, tools=call_tools(call))


def builtin_agent(call: CallContext) -> Agent:
    """The default agent factory."""
    return OutdialAgent(call)
