"""Telephony tools the model can call: end the call, transfer it, report a voicemail, take
the callee off the call list (`opt_out`).

Custom agents get the same tools with `Agent(tools=call_tools(call), ...)`.
"""

from __future__ import annotations

import logging
from typing import Any

from livekit.agents import RunContext, StopResponse, function_tool, llm

from .context import CallContext

logger = logging.getLogger("outdial.agent.tools")


def call_tools(call: CallContext) -> list[llm.Tool | llm.Toolset]:
    """`end_call`, `report_voicemail` and `opt_out` always; `transfer_call` when the agent
    has `transfer_to`."""

    @function_tool
    async def end_call(context: RunContext[Any], goodbye: str = "") -> None:
        """End the phone call. Use it when the conversation is finished or the callee
        asks to hang up.

        Args:
            goodbye: A short closing sentence to say before hanging up, or empty if the
                goodbye was already said.
        """
        await context.wait_for_playout()
        call.end_call("hangup_by_agent", goodbye or None)
        # the call is ending: the model must not keep talking over the goodbye
        raise StopResponse()

    @function_tool
    async def report_voicemail(context: RunContext[Any], greeting: str = "") -> None:
        """Call this as soon as you hear an answering machine or voicemail greeting (for
        example "leave a message after the tone") instead of a live person.

        Args:
            greeting: What the answering machine said, as far as you heard it.
        """
        call.handle_voicemail("llm", greeting or None)
        raise StopResponse()

    @function_tool
    async def opt_out(context: RunContext[Any], goodbye: str = "") -> None:
        """The callee asks not to be called again (to be taken off the list, to stop
        calling them): call this at once, without arguing. Their number is never called
        again and the call ends politely.

        Args:
            goodbye: A short, polite closing sentence to say before hanging up, or empty
                for the standard one.
        """
        await context.wait_for_playout()
        call.opt_out(goodbye or None)
        raise StopResponse()

    @function_tool
    async def transfer_call(context: RunContext[Any]) -> str:
        """Transfer the callee to a human colleague. Tell the callee that you are
        transferring them before calling this."""
        await context.wait_for_playout()
        try:
            await call.transfer()
        except Exception as exc:
            logger.warning("transfer failed: %s", exc, extra={"call_id": call.call_id})
            return (
                "The transfer failed. Tell the callee that nobody can take the call right "
                "now and continue the conversation yourself."
            )
        raise StopResponse()

    tools: list[llm.Tool | llm.Toolset] = [end_call, report_voicemail, opt_out]
    if call.agent.transfer_to:
        tools.append(transfer_call)
    return tools
