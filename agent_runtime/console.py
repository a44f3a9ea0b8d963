"""`outdial agent console`: talk to an agent in the terminal before it dials anyone.

The agent is a call's agent: the `AgentConfig` snapshot a call carries, rendered by
`CallContext` with the given variables, built by the same factory with the same tools, on
the model the provider registry builds for a call. Only the phone is missing: the
telephony actions (hang up, transfer, voicemail, opt-out) print what the call would do instead.

Invariant: nothing the console does reaches a phone, LiveKit or the API (no control, no
event reporter), and the metadata, as on a call, reaches agent code only, never the model.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import IO, Any

from livekit.agents import Agent, AgentSession, ConversationItemAddedEvent, llm
from pydantic import ValidationError

from .builtin import builtin_agent
from .call import AgentFactory
from .context import CallContext
from .contract import AgentConfig, DispatchMetadata, EndReason, Scalar
from .model_keys import stage_missing_key
from .providers import ProviderError, StageSpec, build_stage
from .settings import StageDefaults, WorkerSettings, environment_error

CONSOLE = "console"
# the tool a hang-up comes from, for the line that shows it
_TOOL_OF_REASON = {
    "hangup_by_agent": "end_call",
    "voicemail": "report_voicemail",
    "transferred": "transfer_call",
    "opted_out": "opt_out",
}

Say = Callable[[str], None]


def console_dispatch(
    agent: AgentConfig,
    variables: Mapping[str, Scalar],
    *,
    workspace_id: str,
    metadata: Mapping[str, Any] | None = None,
) -> DispatchMetadata:
    """The contract a call of `agent` would carry, with no phone, room or API behind it."""
    return DispatchMetadata(
        call_id=CONSOLE,
        workspace_id=workspace_id,
        room_name=CONSOLE,
        agent=agent,
        dynamic_variables=dict(variables),
        metadata=dict(metadata or {}),
        to_number=CONSOLE,
        sip_participant_identity=CONSOLE,
        ring_timeout_seconds=agent.ring_timeout_seconds or 0,
        max_duration_seconds=agent.max_duration_seconds or 0,
        events_url="",
        event_token="",
    )


class ConsoleCall(CallContext):
    """A call without a phone: each telephony action says what it would do, then ends the
    conversation the way the call would end (the goodbye is still said)."""

    def __init__(self, dispatch: DispatchMetadata, *, settings: WorkerSettings, say: Say) -> None:
        super().__init__(dispatch, settings=settings)
        self._say = say
        self._announced = False

    @property
    def can_transfer(self) -> bool:
        return bool(self.agent.transfer_to)

    def end_call(self, reason: EndReason, message: str | None = None) -> asyncio.Task[None]:
        if not self._announced:
            self._announced = True
            tool = _TOOL_OF_REASON.get(reason, "hang up")
            self._say(f"[{tool}] the call would hang up here (reason: {reason})")
        return super().end_call(reason, message)

    async def transfer(self, destination: str | None = None) -> None:
        target = destination or self.agent.transfer_to
        if not target:
            raise RuntimeError("this call has no transfer destination")
        self._say(f"[transfer_call] the callee would be transferred to {target} here")
        self.end_call("transferred")

    def opt_out(self, goodbye: str | None = None) -> None:
        self._say("[opt_out] the callee's number would join the do-not-call list here")
        super().opt_out(goodbye)

    def handle_voicemail(self, source: str, detail: str | None = None) -> None:
        heard = f" (heard: {detail})" if detail else ""
        self._say(
            f"[report_voicemail] an answering machine{heard}: voicemail action "
            f"{self.agent.voicemail.action}"
        )
        super().handle_voicemail(source, detail)


def llm_key_problem(agent: AgentConfig, settings: WorkerSettings) -> str | None:
    """The line naming the variable to set when the agent's LLM is a hosted API with no
    key, as `model_keys` words it for a worker; None when a call could build the model. An
    endpoint of the workspace's own gets its own key or a placeholder, as on a call
    (`build_stage` names a referenced key this machine does not hold)."""
    config, defaults = agent.pipeline.llm, settings.llm
    operators_url = (defaults.base_url or "").rstrip("/")
    own_endpoint = config.base_url is not None and (
        config.provider != defaults.provider or config.base_url.rstrip("/") != operators_url
    )
    if config.api_key_ref or own_endpoint:
        return None
    spec = StageSpec.resolve(config, defaults)
    effective = StageDefaults(provider=spec.provider, base_url=spec.base_url, api_key=spec.api_key)
    missing = stage_missing_key("LLM", effective, os.environ)
    return missing.message() if missing else None


def build_model(call: CallContext) -> llm.LLM[Any]:
    """The agent's LLM, built as a call builds it (`pipeline.build_session`)."""
    model: llm.LLM[Any] = build_stage(
        "llm",
        call.agent.pipeline.llm,
        call.settings.llm,
        workspace_id=call.workspace_id,
        model_keys=call.settings.model_keys,
    )
    return model


class _Lines:
    """Lines typed on `stream`, read by a daemon thread so a pending read never holds the
    process open; None at the end of input."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, args=(loop,), daemon=True).start()

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        for line in iter(self._stream.readline, ""):
            loop.call_soon_threadsafe(self._queue.put_nowait, line.rstrip("\r\n"))
        loop.call_soon_threadsafe(self._queue.put_nowait, None)

    async def next(self) -> str | None:
        return await self._queue.get()


class _Printer:
    def __init__(self, out: IO[str], *, prompt: bool) -> None:
        self._out = out
        self.prompt = prompt

    def __call__(self, line: str) -> None:
        self._out.write(line + "\n")
        self._out.flush()

    def ask(self) -> None:
        if self.prompt:
            self._out.write("you: ")
            self._out.flush()

    def on_item(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if item.type == "message" and item.role == "assistant" and item.text_content:
            self(f"agent: {item.text_content}")


async def converse_text(
    call: CallContext, session: AgentSession[Any], agent: Agent, stdin: IO[str], say: _Printer
) -> None:
    """First message, then one model turn per line typed, until the input ends or the
    call would be over (the goodbye said first)."""
    session.on("conversation_item_added", say.on_item)
    await session.start(agent)
    call.session = session
    if call.first_message:
        await session.say(call.first_message)
    else:
        await session.generate_reply()
    lines = _Lines(stdin)
    while call.end_reason is None:
        say.ask()
        line = await lines.next()
        if line is None:
            break
        if not line.strip():
            continue
        if not say.prompt:  # piped input: show what was said, so the transcript reads
            say(f"you: {line}")
        try:
            await session.run(user_input=line)
        except Exception as exc:
            say(f"[error] the model failed: {exc}")
    await call.wait_hung_up()


async def converse_audio(call: CallContext, session: AgentSession[Any], agent: Agent) -> None:
    """livekit-agents' console audio I/O (microphone and speaker) until the call would end
    or Ctrl-C."""
    from livekit.agents.cli import _legacy
    from livekit.agents.cli import cli as lk_cli

    console = _legacy.AgentsConsole.get_instance()
    # AgentSession.start takes its audio from the console registered here, as lk's does
    lk_cli.AgentsConsole._instance = console  # type: ignore[assignment]
    console.console_mode = "audio"
    console.enabled = True
    await session.start(agent)
    call.session = session
    console.set_microphone_enabled(True)
    console.set_speaker_enabled(True)
    try:
        if call.first_message:
            session.say(call.first_message)
        else:
            session.generate_reply()
        await call.wait_ended()
    finally:
        console.set_microphone_enabled(False)
        console.set_speaker_enabled(False)


def sound_device_error() -> str | None:
    """Why there is no microphone and speaker to talk through, or None."""
    try:
        import sounddevice

        sounddevice.query_devices(kind="input")
        sounddevice.query_devices(kind="output")
    except Exception as exc:  # PortAudio missing (OSError) or no default device
        return f"no sound device for --audio ({exc}); leave out --audio to type instead"
    return None


async def _run(
    call: CallContext, factory: AgentFactory, audio: bool, stdin: IO[str], say: _Printer
) -> None:
    made = factory(call)
    agent = await made if inspect.isawaitable(made) else made
    if audio:
        from livekit.plugins import silero

        from .pipeline import build_session

        session = build_session(call, silero.VAD.load())
        async with session:
            await converse_audio(call, session, agent)
        return
    async with AgentSession(llm=build_model(call)) as session:
        await converse_text(call, session, agent, stdin, say)


def run_console(
    agent: AgentConfig,
    variables: Mapping[str, Scalar],
    *,
    workspace_id: str,
    metadata: Mapping[str, Any] | None = None,
    audio: bool = False,
    factory: AgentFactory = builtin_agent,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
) -> int:
    """Run `agent` in the terminal; the exit status (2: it could not start)."""
    stdin = stdin or sys.stdin
    say = _Printer(stdout or sys.stdout, prompt=stdin.isatty())
    try:
        settings = WorkerSettings.from_env()
    except ValidationError as exc:
        print(environment_error(exc), file=sys.stderr)
        return 2
    problem = (sound_device_error() if audio else None) or llm_key_problem(agent, settings)
    if problem:
        print(f"outdial agent console: {problem}", file=sys.stderr)
        return 2
    dispatch = console_dispatch(agent, variables, workspace_id=workspace_id, metadata=metadata)
    call = ConsoleCall(dispatch, settings=settings, say=say)
    say(f"{agent.name} ({agent.id}): a call without the phone. Type to answer; Ctrl-D ends.")
    if call.missing_variables:
        say(f"missing: {', '.join(call.missing_variables)}")
    try:
        asyncio.run(_run(call, factory, audio, stdin, say))
    except ProviderError as exc:
        print(f"outdial agent console: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if call.end_reason is not None:
        say(f"(call over: {call.end_reason})")
    return 0
