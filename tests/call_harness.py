"""Runs the real call runtime (`agent_runtime.call.run_call`) with only the room faked.

Real: the AgentSession (text mode, scripted LLM), CallControl with a LiveKitAPI speaking
Twirp to the LiveKit test server, and the EventReporter posting to `EventSink`, an aiohttp
server on loopback in the test's own loop. Fake: `FakeRoom` (participants only) and
`FakeJobContext` (the narrow `CallJob` the runtime uses). Tests wait on effects (an event
received, something said), never on the clock.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiohttp import web
from livekit import api
from livekit.agents import (
    Agent,
    AgentSession,
    APIConnectOptions,
    ConversationItemAddedEvent,
    SpeechCreatedEvent,
    vad,
)
from livekit.agents.voice.agent_session import SessionConnectOptions

from agent_runtime import CallContext, WorkerSettings, builtin_agent
from agent_runtime.call import AgentFactory, run_call
from agent_runtime.contract import AgentConfig, DispatchMetadata, Metering
from agent_runtime.pipeline import SessionPlan, silence_timeout_seconds
from tests.fake_room import SIP_IDENTITY, FakeRoom
from tests.scripted_llm import ScriptedLLM, Step

T = TypeVar("T")
TOKEN = "event-token"
CALL_ID = "call_flow_1"
ROOM_NAME = f"room-{CALL_ID}"


class Record(Generic[T]):
    """A list tests can wait on: `wait(predicate)` returns the first item, appended so
    far or later, that satisfies it."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self._changed = asyncio.Event()

    def append(self, item: T) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait(self, predicate: Callable[[T], bool], timeout: float = 5.0) -> T:
        async def scan() -> T:
            while True:
                for item in self.items:
                    if predicate(item):
                        return item
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)


@dataclass(frozen=True, slots=True)
class ReservationReply:
    """An answer of the reservation endpoint other than a grant or a refusal: any status,
    any JSON body."""

    status: int = 200
    body: Any = None


class EventSink:
    """The API's agent events endpoint: records each body in arrival order (Bearer token
    checked)."""

    def __init__(self) -> None:
        self.events: Record[dict[str, Any]] = Record()
        self.arrived_at: list[float] = []  # wall-clock arrival of each event, same order
        # The reservation endpoint's answers, in order (reserved seconds; 0 = refused; or a
        # reply of its own), then `after_grants` to every later ask; and the monotonic time
        # of each ask.
        self.grants: list[int | ReservationReply] = []
        self.after_grants: int | ReservationReply = 0
        self.asked_at: list[float] = []
        # what the call held at each ask (the query's held_seconds)
        self.asked_holding: list[int] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> EventSink:
        app = web.Application()
        app.router.add_post("/v1/internal/calls/{call_id}/events", self._handle)
        app.router.add_post("/v1/internal/calls/{call_id}/reservation", self._reserve)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1/internal/calls/{CALL_ID}/events"
        self.reservation_url = self.url.replace("/events", "/reservation")
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401)
        body = await request.json()
        self.arrived_at.append(time.time())
        self.events.append(body)
        return web.Response(status=202)

    async def _reserve(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401)
        self.asked_at.append(time.monotonic())
        self.asked_holding.append(int(request.query["held_seconds"]))
        reply = self.grants.pop(0) if self.grants else self.after_grants
        if isinstance(reply, ReservationReply):
            return web.json_response(reply.body, status=reply.status)
        return web.json_response({"granted": reply > 0, "reservedSeconds": reply})


def call_dispatch(
    events_url: str,
    *,
    ring_timeout: int = 5,
    max_duration: int = 600,
    metering: Metering | None = None,
    **agent: Any,
) -> DispatchMetadata:
    config = {"instructions": "You remind {{name}} of an appointment.", **agent}
    config.setdefault("first_message", "Hi {{name}}!")
    return DispatchMetadata(
        call_id=CALL_ID,
        workspace_id="ws_1",
        room_name=ROOM_NAME,
        agent=AgentConfig(id="ag_1", name="Reminder", worker_name="outdial-agent", **config),
        dynamic_variables={"name": "Ada"},
        to_number="+15551230000",
        sip_participant_identity=SIP_IDENTITY,
        ring_timeout_seconds=ring_timeout,
        max_duration_seconds=max_duration,
        events_url=events_url,
        event_token=TOKEN,
        metering=metering,
    )


@dataclass
class FakeJob:
    id: str
    metadata: str


@dataclass
class FakeProcess:
    userdata: dict[Any, Any] = field(default_factory=dict)


class FakeJobContext:
    """What the runtime uses of `JobContext` (`agent_runtime.call.CallJob`)."""

    def __init__(self, metadata: str, room: FakeRoom, lkapi: api.LiveKitAPI) -> None:
        self.job = FakeJob(id="AJ_test", metadata=metadata)
        self.room = room
        self.api = lkapi
        self.proc = FakeProcess()
        self.log_context_fields: dict[str, Any] = {}
        self.shutdown_reasons: list[str] = []

    async def connect(self) -> None:
        return None

    def shutdown(self, reason: str = "user requested") -> None:
        self.shutdown_reasons.append(reason)


class CallHarness:
    """One call: `start()` runs it in a task; `finished()` returns the events it posted."""

    def __init__(
        self,
        lkapi: api.LiveKitAPI,
        sink: EventSink,
        dispatch: DispatchMetadata,
        settings: WorkerSettings,
        script: list[Step],
        factory: AgentFactory | None = None,
        room: FakeRoom | None = None,
    ) -> None:
        self.room = room or FakeRoom(dispatch.room_name)
        self.ctx = FakeJobContext(dispatch.to_json(), self.room, lkapi)
        self.dispatch = dispatch
        self.sink = sink
        self.llm = ScriptedLLM(script)
        self.call: CallContext | None = None
        self.session: AgentSession | None = None
        self.session_started_at: float | None = None
        # the leg's sip.callStatus each time the agent began to say something
        self.spoken_while: list[str | None] = []
        self.said: Record[tuple[str, str]] = Record()
        self._factory = factory or builtin_agent
        self._settings = settings
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> CallHarness:
        await self.ctx.api.room.create_room(api.CreateRoomRequest(name=self.dispatch.room_name))
        plan = SessionPlan(build=self._build_session, start=self._start_text_session)
        run = run_call(self.ctx, self._capture_call, self._settings, plan)
        self._task = asyncio.create_task(run)
        return self

    async def event(self, event_type: str) -> dict[str, Any]:
        return await self.sink.events.wait(lambda e: e["type"] == event_type)

    async def finished(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        assert self._task is not None
        await asyncio.wait_for(self._task, timeout)
        return self.sink.events.items

    def assistant_lines(self) -> list[str]:
        return [text for role, text in self.said.items if role == "assistant"]

    def _capture_call(self, call: CallContext) -> Agent | Awaitable[Agent]:
        self.call = call
        return self._factory(call)

    def _build_session(self, call: CallContext, _: vad.VAD | None) -> AgentSession:
        session = AgentSession(
            llm=self.llm,
            user_away_timeout=silence_timeout_seconds(call),
            # one provider error closes the session, as retries running out would
            conn_options=SessionConnectOptions(
                llm_conn_options=APIConnectOptions(max_retry=0), max_unrecoverable_errors=0
            ),
        )
        session.on("speech_created", self._on_speech)
        session.on("conversation_item_added", self._on_item)
        self.session = session
        return session

    async def _start_text_session(
        self, session: AgentSession, agent: Agent, _room: Any, _identity: str
    ) -> None:
        await session.start(agent)
        self.session_started_at = time.time()

    def _on_speech(self, _: SpeechCreatedEvent) -> None:
        self.spoken_while.append(self.room.call_status())

    def _on_item(self, event: ConversationItemAddedEvent) -> None:
        text = getattr(event.item, "text_content", None)
        if text:
            self.said.append((event.item.role, text))
