"""The agent-worker websocket (``GET /agent``) and job assignment.

Speaks livekit.protocol.agent WorkerMessage/ServerMessage as binary protobuf frames, like
livekit-server's pkg/agent/worker.go and what livekit-agents' AgentServer expects
(livekit/agents/worker.py, _connection_task/_run_ws/_answer_availability):

1. worker -> ``register`` (agent_name, type, version, permissions);
   server -> ``register`` RegisterWorkerResponse(worker_id "AW_...", server_info).
   The worker refuses to run until this is the first frame it receives.
2. For each job: server -> ``availability`` AvailabilityRequest(job); worker ->
   ``availability`` AvailabilityResponse(job_id, available, participant_identity, ...);
   server -> ``assignment`` JobAssignment(job, url, token). The worker gives up on a job
   whose assignment does not come within 7.5 s of its answer (ASSIGNMENT_TIMEOUT).
3. The worker sends ``update_worker`` (load/status every 2.5 s), ``update_job`` (job
   status changes) and ``ping`` (answered with ``pong``). Websocket-level pings are
   answered by aiohttp (autoping).

A job whose agent has no available worker stays pending and is offered as soon as a
worker with that agent_name registers or reports itself available again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from aiohttp import WSMsgType, web
from livekit.api import AccessToken, VideoGrants
from livekit.protocol import agent, models

from .state import JobInfo, ServerState, WorkerInfo, clone, new_id
from .twirp import AuthStyle, PlainHTTPError, TwirpError, authenticate

# how long a worker has to answer an availability request (livekit-server waits a few s)
AVAILABILITY_TIMEOUT = 5.0
# attribute the worker and livekit-server put on the agent participant
AGENT_NAME_ATTRIBUTE = "lk.agent.name"
SERVER_INFO = models.ServerInfo(
    edition=models.ServerInfo.Standard,
    version="1.9.0-outdial-test",
    protocol=16,
    agent_protocol=1,
    region="local",
    node_id="ND_outdialtest",
)


class _Conn:
    def __init__(self, ws: web.WebSocketResponse, info: WorkerInfo) -> None:
        self.ws = ws
        self.info = info
        self.offers: dict[str, asyncio.Future[agent.AvailabilityResponse]] = {}
        self.in_flight = 0

    async def send(self, msg: agent.ServerMessage) -> None:
        await self.ws.send_bytes(msg.SerializeToString())


class AgentHub:
    """Lives on the server loop: every method except the constructor runs there."""

    def __init__(
        self,
        state: ServerState,
        api_key: str,
        api_secret: str,
        auth_style: AuthStyle,
        ws_url: Callable[[], str],
    ) -> None:
        self._state = state
        self._key = api_key
        self._secret = api_secret
        self._auth_style = auth_style
        self._ws_url = ws_url
        self._conns: dict[str, _Conn] = {}
        self._pending: dict[str, JobInfo] = {}  # job_id -> job waiting for a worker
        self._tasks: set[asyncio.Task[None]] = set()

    # -- websocket ---------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            claims = authenticate(
                request.headers.get("Authorization"), self._key, self._secret, self._auth_style
            )
        except (PlainHTTPError, TwirpError) as exc:
            return web.Response(status=401, text=str(exc))
        if not (claims.get("video") or {}).get("agent"):
            # livekit-server: HandleError(401, rtc.ErrPermissionDenied)
            return web.Response(status=401, text="permissions denied")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn: _Conn | None = None
        try:
            async for frame in ws:
                if frame.type != WSMsgType.BINARY:
                    continue
                msg = agent.WorkerMessage.FromString(frame.data)
                which = msg.WhichOneof("message")
                if conn is None:
                    if which != "register":
                        break  # like livekit-server: the first message must be register
                    conn = await self._register(ws, msg.register)
                else:
                    await self._on_message(conn, which, msg)
        finally:
            if conn is not None:
                self._disconnect(conn)
        return ws

    async def _register(self, ws: web.WebSocketResponse, req: agent.RegisterWorkerRequest) -> _Conn:
        info = WorkerInfo(
            worker_id=new_id("AW_"),
            agent_name=req.agent_name,
            version=req.version,
            job_type=req.type,
            namespace=req.namespace,
            registered_at=time.time(),
        )
        conn = _Conn(ws, info)
        await conn.send(
            agent.ServerMessage(
                register=agent.RegisterWorkerResponse(
                    worker_id=info.worker_id, server_info=SERVER_INFO
                )
            )
        )
        self._conns[info.worker_id] = conn
        with self._state.cond:
            self._state.workers[info.worker_id] = info
            self._state.cond.notify_all()
        self._offer_pending(info.agent_name)
        return conn

    async def _on_message(self, conn: _Conn, which: str | None, msg: agent.WorkerMessage) -> None:
        if which == "availability":
            fut = conn.offers.pop(msg.availability.job_id, None)
            if fut is not None and not fut.done():
                fut.set_result(msg.availability)
        elif which == "ping":
            pong = agent.WorkerPong(
                last_timestamp=msg.ping.timestamp, timestamp=int(time.time() * 1000)
            )
            await conn.send(agent.ServerMessage(pong=pong))
        elif which == "update_worker":
            with self._state.cond:
                conn.info.status = msg.update_worker.status
                conn.info.load = msg.update_worker.load
                conn.info.job_count = msg.update_worker.job_count
            if conn.info.status == agent.WS_AVAILABLE and self._pending:
                # retry jobs nobody took, like the server's periodic re-dispatch; workers
                # report every 2.5 s
                self._offer_pending(conn.info.agent_name)
        elif which == "update_job":
            self._on_update_job(msg.update_job)
        # migrate_job / simulate_job: nothing to do for a single-node test server

    def _on_update_job(self, update: agent.UpdateJobStatus) -> None:
        with self._state.cond:
            job = self._state.jobs.get(update.job_id)
            if job is None:
                return
            job.status_updates.append(clone(update))
            job.status = update.status
            job.error = update.error
            job.job.state.status = update.status
            job.job.state.error = update.error
            job.job.state.updated_at = time.time_ns()
            if update.status in (agent.JS_SUCCESS, agent.JS_FAILED):
                job.job.state.ended_at = time.time_ns()
            self._state.cond.notify_all()

    def _disconnect(self, conn: _Conn) -> None:
        self._conns.pop(conn.info.worker_id, None)
        for fut in conn.offers.values():
            if not fut.done():
                fut.set_exception(ConnectionError("worker disconnected"))
        with self._state.cond:
            conn.info.connected = False
            self._state.workers.pop(conn.info.worker_id, None)
            self._state.cond.notify_all()

    async def close(self) -> None:
        for conn in list(self._conns.values()):
            with contextlib.suppress(Exception):
                await conn.ws.close()
        await self.reset()

    async def reset(self) -> None:
        self._pending.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    # -- jobs --------------------------------------------------------------------------

    def schedule(self, jobs: list[JobInfo]) -> None:
        """Offer new jobs to workers; jobs without a worker wait in ``_pending``."""
        names = set()
        for job in jobs:
            self._pending[job.job_id] = job
            names.add(job.agent_name)
        for name in names:
            self._offer_pending(name)

    async def terminate(self, jobs: list[JobInfo]) -> None:
        for job in jobs:
            self._pending.pop(job.job_id, None)
            conn = self._conns.get(job.worker_id)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.send(
                        agent.ServerMessage(termination=agent.JobTermination(job_id=job.job_id))
                    )

    def _offer_pending(self, agent_name: str) -> None:
        # Cheap exit: benchmarks pile up thousands of jobs for agents nobody serves.
        if self._pick_worker(agent_name) is None:
            return
        for job in list(self._pending.values()):
            if job.agent_name == agent_name and self._pick_worker(agent_name) is not None:
                self._pending.pop(job.job_id)
                task = asyncio.get_running_loop().create_task(self._assign(job))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _pick_worker(self, agent_name: str, exclude: set[str] | None = None) -> _Conn | None:
        best: _Conn | None = None
        for conn in self._conns.values():
            info = conn.info
            if info.agent_name != agent_name or info.status != agent.WS_AVAILABLE:
                continue
            if exclude and info.worker_id in exclude:
                continue
            if best is None or (conn.in_flight + info.job_count) < (
                best.in_flight + best.info.job_count
            ):
                best = conn
        return best

    async def _assign(self, job: JobInfo) -> None:
        tried: set[str] = set()
        while (conn := self._pick_worker(job.agent_name, tried)) is not None:
            tried.add(conn.info.worker_id)
            conn.in_flight += 1
            try:
                if await self._offer(conn, job):
                    return
            finally:
                conn.in_flight -= 1
        # nobody took it: wait for the next registration / availability change
        with self._state.cond:
            alive = job.job_id in self._state.jobs and not self._state.jobs[job.job_id].terminated
        if alive:
            self._pending[job.job_id] = job

    async def _offer(self, conn: _Conn, job: JobInfo) -> bool:
        with self._state.cond:
            current = self._state.jobs.get(job.job_id)
            if current is None or current.terminated:
                return True  # reset or deleted meanwhile: nothing left to assign
            room = self._state.rooms.get(job.room_name)
            proto = clone(current.job)
        if room is not None:
            proto.room.CopyFrom(room.room)
        proto.state.worker_id = conn.info.worker_id
        proto.state.status = agent.JS_RUNNING
        proto.state.started_at = proto.state.updated_at = time.time_ns()
        fut: asyncio.Future[agent.AvailabilityResponse] = asyncio.get_running_loop().create_future()
        conn.offers[job.job_id] = fut
        try:
            await conn.send(agent.ServerMessage(availability=agent.AvailabilityRequest(job=proto)))
            answer = await asyncio.wait_for(fut, AVAILABILITY_TIMEOUT)
        except (TimeoutError, ConnectionError, RuntimeError):
            return False  # no answer in time, or the worker went away: try another one
        finally:
            conn.offers.pop(job.job_id, None)
        if answer.terminate:
            self._finish(job.job_id, agent.JS_SUCCESS)
            return True
        if not answer.available:
            with self._state.cond:
                current = self._state.jobs.get(job.job_id)
                if current is not None:
                    current.declined_by.append(conn.info.worker_id)
                self._state.cond.notify_all()
            return False
        identity = answer.participant_identity or f"agent-{job.job_id}"
        token = self._token(job, conn.info.agent_name, answer, identity)
        proto.state.participant_identity = identity
        await conn.send(
            agent.ServerMessage(
                assignment=agent.JobAssignment(job=proto, url=self._ws_url(), token=token)
            )
        )
        with self._state.cond:
            current = self._state.jobs.get(job.job_id)
            if current is not None:
                current.worker_id = conn.info.worker_id
                current.assigned_at = time.time()
                current.token = token
                current.participant_identity = identity
                current.job.CopyFrom(proto)
            self._state.cond.notify_all()
        return True

    def _finish(self, job_id: str, status: int) -> None:
        with self._state.cond:
            job = self._state.jobs.get(job_id)
            if job is not None:
                job.status = status
                job.terminated = True
                job.job.state.status = status  # type: ignore[assignment]
            self._state.cond.notify_all()

    def _token(
        self, job: JobInfo, agent_name: str, answer: agent.AvailabilityResponse, identity: str
    ) -> str:
        """A room-join token like livekit-server's BuildAgentToken."""
        attributes = dict(answer.participant_attributes)
        attributes[AGENT_NAME_ATTRIBUTE] = agent_name
        return (
            AccessToken(self._key, self._secret)
            .with_identity(identity)
            .with_name(answer.participant_name)
            .with_metadata(answer.participant_metadata)
            .with_attributes(attributes)
            .with_kind("agent")
            .with_grants(
                VideoGrants(
                    room_join=True,
                    room=job.room_name,
                    agent=True,
                    can_update_own_metadata=True,
                )
            )
            .to_jwt()
        )
