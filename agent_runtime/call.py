"""One outbound call inside a job: from the dispatch metadata to `call.ended`.

parse -> agent.started -> join the room -> wait for the SIP participant -> wait until it
is answered (nothing is said before) -> call.answered -> run the agent under the limits ->
call.transcript + call.ended -> drop the leg -> shut the job down.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from livekit import rtc
from livekit.agents import Agent, AgentSession, CloseEvent, JobContext, UserStateChangedEvent
from livekit.agents.voice import room_io

from .context import CallContext
from .contract import AgentEvent
from .dispatch import DispatchFailure, parse_dispatch
from .events import EventReporter
from .outcome import (
    SIP_CALL_STATUS_ATTRIBUTE,
    CallOutcome,
    answered_outcome,
    is_answered,
    not_joined_outcome,
    unanswered_outcome,
)
from .pipeline import build_session
from .settings import WorkerSettings
from .telephony import CallControl
from .transcript import transcript_turns

logger = logging.getLogger("outdial.agent.call")

AgentFactory = Callable[[CallContext], Agent | Awaitable[Agent]]
CONNECT_TIMEOUT_SECONDS = 15.0
HANGUP_TIMEOUT_SECONDS = 5.0


async def run_call(ctx: JobContext, factory: AgentFactory, settings: WorkerSettings) -> None:
    """The job entrypoint body: always ends the job, whatever happens to the call."""
    parsed = parse_dispatch(ctx.job.metadata)
    if isinstance(parsed, DispatchFailure):
        await _report_bad_dispatch(parsed, settings)
        ctx.shutdown("invalid dispatch metadata")
        return

    ctx.log_context_fields = {"call_id": parsed.call_id, "workspace_id": parsed.workspace_id}
    reporter = EventReporter(parsed.events_url, parsed.event_token)
    control = CallControl(ctx.api, parsed.room_name, parsed.sip_participant_identity)
    call = CallContext(parsed, settings=settings, reporter=reporter, control=control)
    try:
        await _CallRun(ctx, call, control, factory).run()
    except Exception as exc:
        logger.exception("call failed")
        call.report("call.failed", {"reason": "error", "message": str(exc)})
        await _drop_leg(control)
    finally:
        await reporter.aclose(settings.event_flush_timeout_seconds)
        ctx.shutdown(f"call ended: {call.end_reason or 'not answered'}")


async def _report_bad_dispatch(failure: DispatchFailure, settings: WorkerSettings) -> None:
    logger.error("cannot run the call: %s", failure.message, extra={"call_id": failure.call_id})
    if not failure.reportable:
        return
    reporter = EventReporter(failure.events_url or "", failure.event_token or "")
    data = {"reason": "invalid_metadata", "message": failure.message}
    reporter.send(AgentEvent(type="call.failed", data=data))
    await reporter.aclose(settings.event_flush_timeout_seconds)


async def _drop_leg(control: CallControl) -> None:
    """Best effort: delete the room so no phone keeps ringing for a call we gave up on."""
    try:
        await asyncio.wait_for(control.hang_up(), HANGUP_TIMEOUT_SECONDS)
    except Exception as exc:
        logger.warning("could not delete the room: %s", exc)


async def wait_until_answered(
    room: rtc.Room, participant: rtc.RemoteParticipant, timeout: float
) -> CallOutcome | None:
    """None once the participant's `sip.callStatus` is active; the outcome if its leg ends
    (or `timeout` passes) before that."""
    identity = participant.identity
    decided: asyncio.Future[CallOutcome | None] = asyncio.get_running_loop().create_future()

    def decide(result: CallOutcome | None) -> None:
        if not decided.done():
            decided.set_result(result)

    def on_attributes(_: dict[str, str], p: rtc.Participant) -> None:
        if p.identity == identity and is_answered(p.attributes):
            decide(None)

    def on_left(p: rtc.RemoteParticipant) -> None:
        if p.identity == identity:
            decide(unanswered_outcome(p.disconnect_reason, p.attributes))

    room.on("participant_attributes_changed", on_attributes)
    room.on("participant_disconnected", on_left)
    try:
        if is_answered(participant.attributes):
            return None
        return await asyncio.wait_for(decided, timeout)
    except TimeoutError:
        # still ringing when our patience ran out: drop it as unanswered
        return unanswered_outcome(None, {SIP_CALL_STATUS_ATTRIBUTE: "ringing"})
    finally:
        room.off("participant_attributes_changed", on_attributes)
        room.off("participant_disconnected", on_left)


class _CallRun:
    def __init__(
        self, ctx: JobContext, call: CallContext, control: CallControl, factory: AgentFactory
    ) -> None:
        self._ctx = ctx
        self._call = call
        self._control = control
        self._factory = factory
        self._identity = call.dispatch.sip_participant_identity
        # the SIP bridge joins, then rings for ring_timeout: give up after both (+ margin)
        self._answer_deadline = (
            time.monotonic()
            + call.dispatch.ring_timeout_seconds
            + call.settings.ring_timeout_margin_seconds
        )

    async def run(self) -> None:
        call = self._call
        call.report(
            "agent.started",
            {
                "agent_id": call.agent.id,
                "missing_variables": call.missing_variables,
                "worker_pid": os.getpid(),
                "job_id": self._ctx.job.id,
            },
        )
        try:
            await asyncio.wait_for(self._ctx.connect(), CONNECT_TIMEOUT_SECONDS)
        except Exception as exc:
            logger.error("cannot join the room: %r", exc)
            call.report(
                "call.failed", {"reason": "cannot_join_room", "message": str(exc) or repr(exc)}
            )
            await _drop_leg(self._control)
            return

        participant = await self._wait_for_participant()
        if participant is None:
            return await self._end_unanswered(not_joined_outcome())
        unanswered = await wait_until_answered(self._ctx.room, participant, self._remaining())
        if unanswered is not None:
            return await self._end_unanswered(unanswered)

        call.answered_at = time.time()
        call.report("call.answered", {"sip_call_id": participant.attributes.get("sip.callID")})
        await self._converse(participant)

    async def _wait_for_participant(self) -> rtc.RemoteParticipant | None:
        try:
            return await asyncio.wait_for(
                self._ctx.wait_for_participant(identity=self._identity), self._remaining()
            )
        except TimeoutError:
            return None

    async def _end_unanswered(self, outcome: CallOutcome) -> None:
        self._call.report("call.ended", outcome.ended_event_data(0.0))
        await _drop_leg(self._control)

    async def _converse(self, participant: rtc.RemoteParticipant) -> None:
        call, room = self._call, self._ctx.room
        agent = self._factory(call)
        if inspect.isawaitable(agent):
            agent = await agent
        session = build_session(call, self._ctx.proc.userdata.get("vad"))
        call.session = session
        self._watch(session, room)
        await session.start(
            agent,
            room=room,
            room_options=room_io.RoomOptions(
                participant_identity=self._identity, close_on_disconnect=False
            ),
        )
        if call.settings.use_amd:
            self._start_amd(session)
        if call.first_message:
            session.say(call.first_message)
        else:
            session.generate_reply()

        # the dispatcher already folded the agent's limit into the call's
        limit = call.dispatch.max_duration_seconds
        timer = asyncio.get_running_loop().call_later(
            limit, lambda: call.end_call("max_duration", call.settings.max_duration_message)
        )
        try:
            reason = await call.wait_ended()
        finally:
            timer.cancel()
        ended_at = time.time()
        call.report("call.transcript", {"turns": transcript_turns(session.history)})
        outcome = answered_outcome(reason, participant.attributes)
        ended = outcome.ended_event_data(call.duration_seconds(ended_at))
        call.report("call.ended", {**ended, "results": call.results})
        await _drop_leg(self._control)
        await session.aclose()

    def _watch(self, session: AgentSession, room: rtc.Room) -> None:
        call = self._call

        @room.on("participant_disconnected")
        def _on_left(p: rtc.RemoteParticipant) -> None:
            if p.identity == self._identity:
                call.mark_ended("hangup_by_callee")

        @session.on("user_state_changed")
        def _on_user_state(event: UserStateChangedEvent) -> None:
            if event.new_state == "away":
                call.end_call("silence_timeout", call.settings.silence_message)

        @session.on("close")
        def _on_close(event: CloseEvent) -> None:
            call.mark_ended("error" if event.error else "completed")

    def _start_amd(self, session: AgentSession) -> None:
        from livekit.agents import AMD

        async def detect() -> None:
            try:
                async with AMD(
                    session, llm=None, stt=None, participant_identity=self._identity
                ) as detector:
                    result = await detector.execute()
            except Exception as exc:
                logger.warning("answering machine detection unavailable: %s", exc)
                return
            if result.is_machine:
                self._call.handle_voicemail("amd", result.category.value)

        task = asyncio.create_task(detect(), name="outdial-amd")
        self._ctx.add_shutdown_callback(lambda: _cancel(task))

    def _remaining(self) -> float:
        return max(self._answer_deadline - time.monotonic(), 0.0)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
