"""`CallContext`: what agent code gets to know about, and do with, one outbound call.

Invariant: the first end reason wins, and the phone leg is dropped (the room deleted) at
most once per call, whichever paths end it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from livekit.agents import AgentSession

from .contract import (
    AgentConfig,
    AgentEvent,
    AgentEventType,
    DispatchMetadata,
    EndReason,
    Scalar,
    render_template,
)
from .events import EventReporter
from .settings import WorkerSettings
from .telephony import CallControl

logger = logging.getLogger("outdial.agent.call")

HANGUP_TIMEOUT_SECONDS = 5.0


class CallContext:
    """One call as the agent sees it.

    `instructions`, `first_message` and `voicemail_message` are already rendered with the
    dynamic variables. `metadata` is the client's own data: it is attached to every
    reported event and available here, but the runtime never puts it into the model's
    instructions or chat context — do not do so yourself unless you mean to.
    """

    def __init__(
        self,
        dispatch: DispatchMetadata,
        *,
        settings: WorkerSettings,
        reporter: EventReporter | None = None,
        control: CallControl | None = None,
    ) -> None:
        self.dispatch = dispatch
        self.settings = settings
        self._reporter = reporter
        self._control = control
        self.session: AgentSession[Any] | None = None
        # what agent code learned on the call (e.g. {"confirmed": True}): sent with call.ended
        self.results: dict[str, Any] = {}
        self.answered_at: float | None = None
        self._end_reason: EndReason | None = None
        self._ended = asyncio.Event()
        self._hangup_task: asyncio.Task[None] | None = None
        self._drop_task: asyncio.Task[None] | None = None

        variables = dispatch.dynamic_variables
        self.instructions, missing = render_template(dispatch.agent.instructions, variables)
        self.first_message, more = render_template(dispatch.agent.first_message or "", variables)
        missing += more
        self.voicemail_message, more = render_template(
            dispatch.agent.voicemail.message or "", variables
        )
        missing += more
        self.missing_variables: list[str] = list(dict.fromkeys(missing))

    # -- what the call is ----------------------------------------------------------------

    @property
    def call_id(self) -> str:
        return self.dispatch.call_id

    @property
    def workspace_id(self) -> str:
        return self.dispatch.workspace_id

    @property
    def agent(self) -> AgentConfig:
        return self.dispatch.agent

    @property
    def dynamic_variables(self) -> dict[str, Scalar]:
        return self.dispatch.dynamic_variables

    @property
    def metadata(self) -> dict[str, Any]:
        return self.dispatch.metadata

    @property
    def to_number(self) -> str:
        return self.dispatch.to_number

    @property
    def from_number(self) -> str | None:
        return self.dispatch.from_number

    @property
    def end_reason(self) -> EndReason | None:
        return self._end_reason

    @property
    def ended(self) -> bool:
        """The call is over (hung up, or ended by the callee or an error)."""
        return self._ended.is_set()

    @property
    def can_transfer(self) -> bool:
        return bool(self.agent.transfer_to) and self._control is not None

    # -- reporting ----------------------------------------------------------------------

    def report(self, event_type: AgentEventType, data: dict[str, Any] | None = None) -> AgentEvent:
        """Send an event to the API in the background; the client's metadata rides along."""
        payload = dict(data or {})
        payload.setdefault("metadata", self.metadata)
        event = AgentEvent(type=event_type, data=payload)
        if self._reporter is not None:
            self._reporter.send(event)
        return event

    # -- ending the call ----------------------------------------------------------------

    def end_call(self, reason: EndReason, message: str | None = None) -> asyncio.Task[None]:
        """Say `message` (after whatever is being said), then drop the phone leg.

        Runs in the background so a tool can call it and return; the first reason wins.
        """
        if self._hangup_task is None:
            self._end_reason = self._end_reason or reason
            self._hangup_task = asyncio.create_task(self._hang_up(message), name="outdial-hangup")
        return self._hangup_task

    def mark_ended(self, reason: EndReason) -> None:
        """The call is over without us hanging up (the callee left, an error); the leg is
        still dropped when the runtime wraps up."""
        self._end_reason = self._end_reason or reason
        self._ended.set()

    async def wait_ended(self) -> EndReason:
        await self._ended.wait()
        return self._end_reason or "completed"

    async def transfer(self, destination: str | None = None) -> None:
        """Transfer the callee to `destination` (default: the agent's `transfer_to`)."""
        target = destination or self.agent.transfer_to
        if not target or self._control is None:
            raise RuntimeError("this call has no transfer destination")
        await self._control.transfer(target)
        self._end_reason = self._end_reason or "transferred"
        self.end_call("transferred")

    def handle_voicemail(self, source: str, detail: str | None = None) -> None:
        """An answering machine picked up: apply the agent's voicemail action."""
        action = self.agent.voicemail.action
        leave = action == "leave_message" and bool(self.voicemail_message)
        self.report(
            "call.voicemail",
            {"decision": "machine", "action": action, "source": source, "detail": detail},
        )
        self.end_call("voicemail", self.voicemail_message if leave else None)

    def opt_out(self, goodbye: str | None = None) -> None:
        """The callee asked not to be called again: report it (the API puts the call's
        number on its workspace's do-not-call list), say goodbye, then hang up."""
        self.report("call.opted_out", {"number": self.to_number})
        self.end_call("opted_out", goodbye or self.settings.opt_out_message)

    async def _hang_up(self, message: str | None) -> None:
        """Say the goodbye, then end the call: the runtime reports the end before it drops
        the leg (`drop_leg`), so the API hears why from us, not from the room's deletion."""
        try:
            session = self.session
            if session is not None:
                # let the current turn (e.g. the model's own goodbye) finish first
                if (speech := session.current_speech) is not None:
                    await _wait_quietly(speech.wait_for_playout())
                if message:
                    handle = session.say(message, allow_interruptions=False)
                    await _wait_quietly(handle.wait_for_playout())
        except Exception:
            logger.exception("error while hanging up", extra={"call_id": self.call_id})
        finally:
            self._ended.set()

    async def drop_leg(self) -> None:
        """Delete the room, which disconnects the SIP participant so the phone really drops.
        Sent once per call: every later caller waits for that same request."""
        if self._control is None:
            return
        if self._drop_task is None:
            self._drop_task = asyncio.create_task(
                _delete_room(self._control, self.call_id), name="outdial-drop-leg"
            )
        # a cancelled caller must not cancel the request the others wait for
        await asyncio.shield(self._drop_task)

    async def flush_reports(self, timeout: float) -> None:
        """Wait (at most `timeout`) until the events reported so far reached the API."""
        if self._reporter is not None:
            await self._reporter.flush(timeout)

    async def wait_hung_up(self) -> None:
        """Wait for a hang-up in progress, if any (its goodbye stops when the session
        closes), so nothing of the call outlives it."""
        if self._hangup_task is not None:
            await self._hangup_task

    def duration_seconds(self, now: float | None = None) -> float:
        if self.answered_at is None:
            return 0.0
        return (now or time.time()) - self.answered_at


async def _delete_room(control: CallControl, call_id: str) -> None:
    try:
        await asyncio.wait_for(control.hang_up(), HANGUP_TIMEOUT_SECONDS)
    except Exception as exc:
        # best effort: LiveKit closes an empty room by itself, and the SIP bridge its leg
        logger.warning("could not delete the room: %r", exc, extra={"call_id": call_id})


async def _wait_quietly(awaitable: Any, timeout: float = 30.0) -> None:
    """Playout may be cut by the callee hanging up; that is not our error."""
    with contextlib.suppress(asyncio.TimeoutError, RuntimeError):
        await asyncio.wait_for(awaitable, timeout)
