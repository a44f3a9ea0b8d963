"""A scripted `llm.LLM` for text-mode AgentSessions: no network, no model.

Each request is answered by the next step: text, one tool call, or an exception the stream
raises (a provider failing). Every ChatContext and tool list it receives is recorded, so
tests can assert on the full text the model sees.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from livekit.agents import ChatContext, llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, NotGivenOr

Step = str | llm.FunctionToolCall | Exception


class ScriptedLLM(llm.LLM):
    def __init__(self, steps: list[Step]) -> None:
        super().__init__()
        self._steps = list(steps)
        self.requests: list[tuple[ChatContext, list[Any]]] = []

    def chat(
        self,
        *,
        chat_ctx: ChatContext,
        tools: list[Any] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = False,
        tool_choice: NotGivenOr[Any] = False,
        extra_kwargs: NotGivenOr[dict[str, Any]] = False,
    ) -> llm.LLMStream:
        self.requests.append((chat_ctx.copy(), list(tools or [])))
        step = self._steps.pop(0) if self._steps else "Okay."
        return _ScriptedStream(self, step, chat_ctx=chat_ctx, tools=tools or [], conn=conn_options)

    def seen_text(self) -> str:
        """Everything the model was given: chat items and tool schemas, as JSON."""
        dumps = []
        for chat_ctx, tools in self.requests:
            dumps.append(json.dumps(chat_ctx.to_dict(exclude_timestamp=True)))
            dumps.extend(repr(tool) + str(getattr(tool, "info", "")) for tool in tools)
        return "\n".join(dumps)


class _ScriptedStream(llm.LLMStream):
    def __init__(
        self,
        owner: ScriptedLLM,
        step: Step,
        *,
        chat_ctx: ChatContext,
        tools: list[Any],
        conn: APIConnectOptions,
    ) -> None:
        super().__init__(owner, chat_ctx=chat_ctx, tools=tools, conn_options=conn)
        self._step = step

    async def _run(self) -> None:
        if isinstance(self._step, Exception):
            raise self._step
        request_id = uuid.uuid4().hex
        if isinstance(self._step, str):
            delta = llm.ChoiceDelta(role="assistant", content=self._step)
        else:
            delta = llm.ChoiceDelta(role="assistant", tool_calls=[self._step])
        self._event_ch.send_nowait(llm.ChatChunk(id=request_id, delta=delta))


def tool_call(name: str, **arguments: Any) -> llm.FunctionToolCall:
    return llm.FunctionToolCall(
        name=name, arguments=json.dumps(arguments), call_id=f"call_{uuid.uuid4().hex[:8]}"
    )
