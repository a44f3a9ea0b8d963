"""In-memory state of the test server: rooms, participants, trunks, dispatches, jobs, workers.

Everything lives behind one ``threading.Condition`` because it is written on the server's
event loop and read (and waited on) from test threads. Critical sections are short and
never await, so a plain lock is cheaper than bouncing every read through the loop.
Readers get deep copies of protobuf messages, so a test can never observe a half-applied
change or mutate server state by accident.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from google.protobuf.message import Message
from livekit.protocol import agent, models
from livekit.protocol.agent_dispatch import AgentDispatch, RoomAgentDispatch
from livekit.protocol.sip import SIPOutboundTrunkInfo

_ALPHABET = string.ascii_letters + string.digits
M = TypeVar("M", bound=Message)
T = TypeVar("T")

# Defaults livekit-server applies when CreateRoom leaves the timeouts at 0 (config.yaml
# room.empty_timeout / room.departure_timeout).
DEFAULT_EMPTY_TIMEOUT = 300
DEFAULT_DEPARTURE_TIMEOUT = 20


def new_id(prefix: str) -> str:
    """A LiveKit-style id: the resource prefix plus 12 base62 characters (like guid.New)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(12))


def clone(msg: M) -> M:
    out = type(msg)()
    out.CopyFrom(msg)
    return out


@dataclass
class RoomState:
    """One room as the server sees it. ``participants`` are the ones currently in the room;
    ``departed`` keeps the last info of those who left so a later webhook can describe them."""

    room: models.Room
    agents: list[RoomAgentDispatch] = field(default_factory=list)
    participants: dict[str, models.ParticipantInfo] = field(default_factory=dict)
    departed: dict[str, models.ParticipantInfo] = field(default_factory=dict)
    dispatches: dict[str, AgentDispatch] = field(default_factory=dict)
    # (sip_status_code, sip_status) set by set_participant. The real server never puts the
    # SIP status on a participant or in a webhook; it is kept here for tests only.
    sip_status: dict[str, tuple[str, str]] = field(default_factory=dict)

    def copy(self) -> RoomState:
        return RoomState(
            room=clone(self.room),
            agents=[clone(a) for a in self.agents],
            participants={k: clone(v) for k, v in self.participants.items()},
            departed={k: clone(v) for k, v in self.departed.items()},
            dispatches={k: clone(v) for k, v in self.dispatches.items()},
            sip_status=dict(self.sip_status),
        )


@dataclass
class RecordedRequest:
    """One Twirp request as received. ``status`` is None while the request is in flight,
    the HTTP status once answered, and 0 when the connection was dropped on purpose."""

    service: str
    method: str
    request: Message | None
    claims: dict[str, Any]
    received_at: float
    status: int | None = None
    error_code: str | None = None
    response: Message | None = None
    request_id: str = ""


@dataclass
class WorkerInfo:
    worker_id: str
    agent_name: str
    version: str = ""
    job_type: int = agent.JT_ROOM
    namespace: str = ""
    status: int = agent.WS_AVAILABLE
    load: float = 0.0
    job_count: int = 0
    connected: bool = True
    registered_at: float = 0.0


@dataclass
class JobInfo:
    """A job created by CreateRoom(agents=...) or CreateDispatch. ``status`` is the last
    status the worker reported (JS_PENDING until then); ``status_updates`` keeps every
    UpdateJobStatus the worker sent, in order; ``declined_by`` the workers that declined it."""

    job_id: str
    dispatch_id: str
    agent_name: str
    room_name: str
    metadata: str
    job: agent.Job
    worker_id: str = ""
    status: int = agent.JS_PENDING
    error: str = ""
    assigned_at: float | None = None
    token: str = ""
    participant_identity: str = ""
    status_updates: list[agent.UpdateJobStatus] = field(default_factory=list)
    terminated: bool = False
    # workers that answered the job's availability request with available=False, in order
    declined_by: list[str] = field(default_factory=list)

    def copy(self) -> JobInfo:
        return replace(
            self,
            job=clone(self.job),
            status_updates=[clone(u) for u in self.status_updates],
            declined_by=list(self.declined_by),
        )


@dataclass
class SentWebhook:
    event: str
    room_name: str
    body: str
    auth: str
    status: int
    response_text: str
    sent_at: float
    forge: str | None = None


class ServerState:
    """Owns every piece of mutable state. Methods with a leading underscore expect the
    caller to hold ``self.cond``; the rest take it themselves."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.rooms: dict[str, RoomState] = {}
        # rooms that were deleted or finished, kept so room_finished can still describe them
        self.closed_rooms: dict[str, RoomState] = {}
        self.trunks: dict[str, SIPOutboundTrunkInfo] = {}
        self.requests: list[RecordedRequest] = []
        # per (service, method) request counts, kept even when records are off
        self.counts: Counter[tuple[str, str]] = Counter()
        # benchmarks turn records off so a long run does not hold every request in memory
        self.record_requests = True
        self.jobs: dict[str, JobInfo] = {}
        self.workers: dict[str, WorkerInfo] = {}
        self.webhooks: list[SentWebhook] = []

    def reset(self) -> None:
        with self.cond:
            self.rooms.clear()
            self.closed_rooms.clear()
            self.trunks.clear()
            self.requests.clear()
            self.counts.clear()
            self.jobs.clear()
            self.webhooks.clear()
            self.cond.notify_all()

    def wait(
        self, predicate: Callable[[], T | None], timeout: float, describe: Callable[[], str]
    ) -> T:
        """Block the calling thread until ``predicate`` (run under the lock) returns a truthy
        value, or raise TimeoutError with ``describe()`` appended to help debugging."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                result = predicate()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(describe())
                self.cond.wait(remaining)

    # -- rooms -------------------------------------------------------------------------

    def _new_room(self, name: str, **fields: Any) -> RoomState:
        now = time.time()
        room = models.Room(
            sid=new_id("RM_"),
            name=name,
            creation_time=int(now),
            creation_time_ms=int(now * 1000),
            **fields,
        )
        if not room.empty_timeout:
            room.empty_timeout = DEFAULT_EMPTY_TIMEOUT
        if not room.departure_timeout:
            room.departure_timeout = DEFAULT_DEPARTURE_TIMEOUT
        state = RoomState(room=room)
        self.rooms[name] = state
        self.closed_rooms.pop(name, None)
        return state

    def _get_or_create_room(self, name: str) -> RoomState:
        return self.rooms.get(name) or self._new_room(name)

    def _close_room(self, name: str, reason: int) -> RoomState | None:
        """Remove a room; everyone still inside departs with ``reason``."""
        state = self.rooms.pop(name, None)
        if state is None:
            return None
        for identity in list(state.participants):
            self._depart(state, identity, reason)
        self.closed_rooms[name] = state
        return state

    def _depart(self, state: RoomState, identity: str, reason: int) -> models.ParticipantInfo:
        info = state.participants.pop(identity)
        info.state = models.ParticipantInfo.DISCONNECTED
        if not info.disconnect_reason:
            info.disconnect_reason = reason  # type: ignore[assignment]
        state.departed[identity] = info
        state.room.num_participants = len(state.participants)
        return info

    def _add_participant(self, state: RoomState, info: models.ParticipantInfo) -> None:
        if info.identity in state.participants:
            # the real server kicks the older session out when an identity joins twice
            self._depart(state, info.identity, models.DisconnectReason.DUPLICATE_IDENTITY)
        state.departed.pop(info.identity, None)
        state.participants[info.identity] = info
        state.room.num_participants = len(state.participants)

    def lookup_room(self, name: str) -> RoomState | None:
        """Live room first, then a closed one (for webhooks sent after the room ended)."""
        with self.cond:
            state = self.rooms.get(name) or self.closed_rooms.get(name)
            return state.copy() if state else None

    # -- jobs --------------------------------------------------------------------------

    def _new_job(self, dispatch: AgentDispatch, room: models.Room) -> JobInfo:
        job = agent.Job(
            id=new_id("AJ_"),
            dispatch_id=dispatch.id,
            type=agent.JT_ROOM,
            room=room,
            metadata=dispatch.metadata,
            agent_name=dispatch.agent_name,
            state=agent.JobState(status=agent.JS_PENDING, updated_at=time.time_ns()),
        )
        job.attributes.update(dict(dispatch.attributes))
        info = JobInfo(
            job_id=job.id,
            dispatch_id=dispatch.id,
            agent_name=dispatch.agent_name,
            room_name=room.name,
            metadata=dispatch.metadata,
            job=job,
        )
        self.jobs[job.id] = info
        dispatch.state.jobs.append(job)
        return info

    def _dispatch(
        self,
        state: RoomState,
        agent_name: str,
        metadata: str,
        attributes: dict[str, str],
    ) -> JobInfo:
        dispatch = AgentDispatch(
            id=new_id("AD_"), agent_name=agent_name, room=state.room.name, metadata=metadata
        )
        dispatch.attributes.update(attributes)
        dispatch.state.created_at = time.time_ns()
        job = self._new_job(dispatch, state.room)
        state.dispatches[dispatch.id] = dispatch
        return job
