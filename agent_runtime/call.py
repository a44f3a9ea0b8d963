"""One outbound call inside a job: from the dispatch metadata to the call's end event.

parse -> agent.started -> join the room (the SIP leg is watched from here on) -> build the
agent and start its session bound to the room, saying nothing -> agent.ready (the API
dials only now) -> wait for the SIP participant, then for `sip.callStatus == active`
(nothing is said before) -> call.answered -> first message -> run under the limits (and,
metered, the minutes the API grants: `metering`) -> call.transcript + the end event
(`call.failed` for a failed outcome, else `call.ended`) -> drop the leg, once -> shut the job down.

Invariant: every wait races the call's end. A leg that leaves, a session that fails or the
agent hanging up ends the call at once, whatever step it is in; the first of them decides
the outcome, and exactly one end event is reported.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast

from livekit import api, rtc
from livekit.agents import Agent, AgentSession, ChatContext, CloseEvent, UserStateChangedEvent

from .context import CallContext
from .contract import AgentEvent, AgentEventType, EndReason
from .dispatch import DispatchFailure, parse_dispatch
from .events import EventReporter
from .leg import SipLeg
from .metering import keep_reserved
from .outcome import CallOutcome, answered_outcome, ended_event, not_joined_outcome
from .pipeline import SessionPlan
from .settings import WorkerSettings
from .telephony import CallControl
from .transcript import transcript_turns

logger = logging.getLogger("outdial.agent.call")

AgentFactory = Callable[[CallContext], Agent | Awaitable[Agent]]
CONNECT_TIMEOUT_SECONDS = 15.0
SESSION_START_TIMEOUT_SECONDS = 15.0
END_REPORT_WAIT_SECONDS = 2.0
T = TypeVar("T")


class JobInfo(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def metadata(self) -> str: ...


class JobProcessInfo(Protocol):
    @property
    def userdata(self) -> dict[Any, Any]: ...


class CallJob(Protocol):
    """What a call uses of livekit-agents' `JobContext`."""

    log_context_fields: dict[str, Any]

    @property
    def job(self) -> JobInfo: ...
    @property
    def room(self) -> rtc.Room: ...
    @property
    def api(self) -> api.LiveKitAPI: ...
    @property
    def proc(self) -> JobProcessInfo: ...
    async def connect(self) -> None: ...
    def shutdown(self, reason: str = ...) -> None: ...


async def run_call(
    ctx: CallJob,
    factory: AgentFactory,
    settings: WorkerSettings,
    plan: SessionPlan | None = None,
) -> None:
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
    outcome: CallOutcome | None = None
    try:
        outcome = await _CallRun(ctx, call, factory, plan or SessionPlan()).run()
    except Exception:
        # the run turns the call's own failures into its end event: this is closing up
        logger.exception("error while ending the call")
    finally:
        try:
            await reporter.aclose(settings.event_flush_timeout_seconds)
            await control.aclose()
        finally:
            ctx.shutdown(
                f"call ended: {outcome.status} ({outcome.reason})"
                if outcome
                else "call ended: error while closing it"
            )


async def _report_bad_dispatch(failure: DispatchFailure, settings: WorkerSettings) -> None:
    logger.error("cannot run the call: %s", failure.message, extra={"call_id": failure.call_id})
    if not failure.reportable:
        return
    reporter = EventReporter(failure.events_url or "", failure.event_token or "")
    event_type, data = ended_event(CallOutcome(status="failed", reason="invalid_metadata"), 0.0)
    reporter.send(
        AgentEvent(type=cast(AgentEventType, event_type), data=data | {"message": failure.message})
    )
    await reporter.aclose(settings.event_flush_timeout_seconds)


class _CallOver(Exception):
    """The call ended while a step was still waiting."""


class _CallRun:
    def __init__(
        self, ctx: CallJob, call: CallContext, factory: AgentFactory, plan: SessionPlan
    ) -> None:
        self._ctx = ctx
        self._call = call
        self._factory = factory
        self._plan = plan
        self._identity = call.dispatch.sip_participant_identity
        # decided before anyone answered (the leg left, or never came or answered in time)
        self._outcome: CallOutcome | None = None
        self._failure: str | None = None
        self._answer_reported = False
        self._session: AgentSession[Any] | None = None
        self._limit: asyncio.TimerHandle | None = None
        self._amd: asyncio.Task[None] | None = None
        self._minutes: asyncio.Task[None] | None = None
        # watched from before the room is joined: nothing the leg does can be missed
        self._ended = asyncio.ensure_future(call.wait_ended())
        self._leg = SipLeg(ctx.room, self._identity, on_left=self._on_leg_left)
        # the API deletes the room when it ends the call (cancel, no agent, a deadline)
        ctx.room.on("disconnected", self._on_room_closed)

    async def run(self) -> CallOutcome:
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
            self._stop_watching()
            outcome = CallOutcome(status="failed", reason="cannot_join_room")
            self._report_end(outcome, message=str(exc) or repr(exc))
            await call.drop_leg()
            return outcome

        try:
            await self._converse()
        except _CallOver:
            pass
        except Exception as exc:
            logger.exception("the agent failed")
            self._fail(str(exc) or repr(exc))
        return await self._wrap_up()

    async def _converse(self) -> None:
        call, leg = self._call, self._leg
        # joining fills the room with who is already there, without events
        self._check_over()
        agent = await self._until_over(self._make_agent())
        session = self._plan.build(call, self._ctx.proc.userdata.get("vad"))
        call.session = self._session = session
        session.on("close", self._on_session_close)
        start = self._plan.start(session, agent, self._ctx.room, self._identity)
        try:
            await self._until_over(start, SESSION_START_TIMEOUT_SECONDS)
        except TimeoutError:
            return self._fail("the agent session did not start in time")
        self._check_over()
        call.report("agent.ready", {"job_id": self._ctx.job.id, "agent_id": call.agent.id})

        # The API dials now, or soon (its queue, its retries): wait generously for the leg;
        # once it is there it rings for ring_timeout (+ margin) from its join.
        ringing = call.dispatch.ring_timeout_seconds + call.settings.ring_timeout_margin_seconds
        try:
            await self._until_over(
                leg.wait_joined(), ringing + call.settings.leg_join_timeout_seconds
            )
        except TimeoutError:
            return self._end_before_answer(not_joined_outcome())
        deadline = time.monotonic() + ringing
        unanswered = await self._until_over(leg.wait_until_answered(_until(deadline)))
        if unanswered is not None:
            self._end_before_answer(unanswered)
            return

        self._on_answered(session)
        await self._ended

    def _on_answered(self, session: AgentSession[Any]) -> None:
        call = self._call
        self._report_answered()
        # the away timer may have run while the phone rang: silence counts from the answer
        session.reset_away_timer()
        session.on("user_state_changed", self._on_user_state)
        if call.settings.use_amd:
            self._amd = asyncio.create_task(self._detect_machine(session), name="outdial-amd")
        if call.first_message:
            session.say(call.first_message)
        else:
            session.generate_reply()
        # the dispatcher already folded the agent's limit into the call's
        self._limit = asyncio.get_running_loop().call_later(
            call.dispatch.max_duration_seconds,
            call.end_call,
            "max_duration",
            call.settings.max_duration_message,
        )
        metering = call.dispatch.metering
        if metering is not None:
            self._minutes = asyncio.create_task(
                keep_reserved(
                    metering,
                    call.dispatch.event_token,
                    time.monotonic(),
                    call.settings.reservation_lead_seconds,
                    lambda: call.end_call(
                        "balance_exhausted", call.settings.balance_exhausted_message
                    ),
                ),
                name="outdial-minutes",
            )

    async def _make_agent(self) -> Agent:
        agent = self._factory(self._call)
        if inspect.isawaitable(agent):
            agent = await agent
        return agent

    async def _until_over(self, step: Awaitable[T], timeout: float | None = None) -> T:
        """`step`'s result, unless the call ends first (`_CallOver`, `step` cancelled) or
        `timeout` passes (`TimeoutError`)."""
        task = asyncio.ensure_future(step)
        try:
            await asyncio.wait(
                {task, self._ended}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._check_over()
        if task.cancelled():
            raise TimeoutError
        return task.result()

    def _check_over(self) -> None:
        self._leg.sync()
        if self._call.ended:
            raise _CallOver

    # -- what ends the call ---------------------------------------------------------------

    def _on_leg_left(self, leg: SipLeg) -> None:
        departure = leg.departure()
        if leg.answered_at is None:
            self._end_before_answer(departure)
        else:
            self._call.mark_ended(cast(EndReason, departure.reason))

    def _on_room_closed(self, *_: object) -> None:
        if self._leg.answered_at is None:
            self._end_before_answer(CallOutcome(status="failed", reason="room_closed"))
        else:
            self._call.mark_ended("room_closed")

    def _end_before_answer(self, outcome: CallOutcome) -> None:
        if self._call.end_reason is None:
            self._outcome = outcome
        self._call.mark_ended(cast(EndReason, outcome.reason))

    def _on_session_close(self, event: CloseEvent) -> None:
        if event.error is not None:
            self._fail(str(event.error.error))
        elif self._leg.answered_at is None:
            # nobody may be left ringing for an agent that is gone
            self._fail("the agent session closed before the call was answered")
        else:
            self._call.mark_ended("completed")

    def _fail(self, message: str) -> None:
        self._failure = self._failure or message
        self._call.mark_ended("agent_failed")

    def _on_user_state(self, event: UserStateChangedEvent) -> None:
        if event.new_state == "away":
            self._call.end_call("silence_timeout", self._call.settings.silence_message)

    # -- reporting the end ------------------------------------------------------------------

    async def _wrap_up(self) -> CallOutcome:
        call, leg, session = self._call, self._leg, self._session
        self._stop_watching()
        # an outcome decided before the answer stands, even if an answer came in meanwhile
        answered = self._outcome is None and leg.answered_at is not None
        outcome = self._outcome or answered_outcome(call.end_reason or "completed", leg.attributes)
        if answered:
            # the callee may have answered and left before the agent got to the gate
            self._report_answered()
            history = session.history if session is not None else ChatContext.empty()
            call.report("call.transcript", {"turns": transcript_turns(history)})
        self._report_end(outcome, message=self._failure, with_results=answered)
        # The room's deletion reaches the API as webhooks too: our report goes first.
        await call.flush_reports(END_REPORT_WAIT_SECONDS)
        await call.drop_leg()
        if self._amd is not None:
            await asyncio.gather(self._amd, return_exceptions=True)
        if session is not None:
            await session.aclose()
        await call.wait_hung_up()
        return outcome

    def _stop_watching(self) -> None:
        self._leg.close()
        self._ctx.room.off("disconnected", self._on_room_closed)
        self._ended.cancel()
        if self._limit is not None:
            self._limit.cancel()
        if self._amd is not None:
            self._amd.cancel()
        if self._minutes is not None:
            self._minutes.cancel()
        if self._session is not None:
            self._session.off("close", self._on_session_close)
            self._session.off("user_state_changed", self._on_user_state)

    def _report_answered(self) -> None:
        if self._answer_reported:
            return
        self._answer_reported = True
        self._call.answered_at = self._leg.answered_at
        self._call.report("call.answered", {"sip_call_id": self._leg.attributes.get("sip.callID")})

    def _report_end(
        self, outcome: CallOutcome, *, message: str | None = None, with_results: bool = False
    ) -> None:
        event_type, data = ended_event(outcome, self._call.duration_seconds())
        if message and outcome.status == "failed":
            data["message"] = message
        if with_results:
            data["results"] = self._call.results
        self._call.report(cast(AgentEventType, event_type), data)

    async def _detect_machine(self, session: AgentSession[Any]) -> None:
        from livekit.agents import AMD

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


def _until(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)
