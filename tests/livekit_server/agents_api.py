"""Agent workers and jobs as tests see them: registered workers, jobs and their statuses.

A mixin of LiveKitTestServer (server.py); the protocol itself lives in agent_ws.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from livekit.protocol import agent

from .state import JobInfo, ServerState, WorkerInfo


class AgentsMixin:
    _state: ServerState

    def workers(self) -> list[WorkerInfo]:
        with self._state.cond:
            return [_copy_worker(w) for w in self._state.workers.values()]

    def wait_for_worker(self, agent_name: str = "", timeout: float = 20.0) -> WorkerInfo:
        def ready() -> WorkerInfo | None:
            for w in self._state.workers.values():
                if w.agent_name == agent_name:
                    return _copy_worker(w)
            return None

        def describe() -> str:
            names = [w.agent_name for w in self._state.workers.values()]
            return f"no worker for agent {agent_name!r} within {timeout}s; registered: {names}"

        return self._state.wait(ready, timeout, describe)

    async def wait_for_worker_async(
        self, agent_name: str = "", timeout: float = 20.0
    ) -> WorkerInfo:
        return await asyncio.to_thread(self.wait_for_worker, agent_name, timeout)

    def jobs(self) -> list[JobInfo]:
        with self._state.cond:
            return [j.copy() for j in self._state.jobs.values()]

    def job(self, job_id: str) -> JobInfo | None:
        with self._state.cond:
            job = self._state.jobs.get(job_id)
            return job.copy() if job else None

    def wait_for_job(
        self,
        *,
        room_name: str | None = None,
        agent_name: str | None = None,
        assigned: bool = True,
        timeout: float = 10.0,
    ) -> JobInfo:
        """First job matching room/agent (and assigned to a worker, by default)."""

        def ready() -> JobInfo | None:
            for job in self._state.jobs.values():
                if room_name is not None and job.room_name != room_name:
                    continue
                if agent_name is not None and job.agent_name != agent_name:
                    continue
                if assigned and job.assigned_at is None:
                    continue
                return job.copy()
            return None

        def describe() -> str:
            jobs = [
                (j.job_id, j.agent_name, j.room_name, j.worker_id)
                for j in self._state.jobs.values()
            ]
            return f"no job room={room_name} agent={agent_name} assigned={assigned}: {jobs}"

        return self._state.wait(ready, timeout, describe)

    async def wait_for_job_async(
        self,
        *,
        room_name: str | None = None,
        agent_name: str | None = None,
        assigned: bool = True,
        timeout: float = 10.0,
    ) -> JobInfo:
        return await asyncio.to_thread(
            lambda: self.wait_for_job(
                room_name=room_name, agent_name=agent_name, assigned=assigned, timeout=timeout
            )
        )

    def wait_for_declined(self, job_id: str, worker_id: str, timeout: float = 10.0) -> JobInfo:
        """Block until ``worker_id`` has declined the job (AvailabilityResponse
        available=False) and the server has handled that answer."""

        def ready() -> JobInfo | None:
            job = self._state.jobs.get(job_id)
            return job.copy() if job and worker_id in job.declined_by else None

        def describe() -> str:
            job = self._state.jobs.get(job_id)
            return f"job {job_id} not declined by {worker_id}: {job.declined_by if job else None}"

        return self._state.wait(ready, timeout, describe)

    async def wait_for_job_status_async(
        self, job_id: str, statuses: int | str | Iterable[int | str], timeout: float = 10.0
    ) -> JobInfo:
        return await asyncio.to_thread(self.wait_for_job_status, job_id, statuses, timeout)

    def wait_for_job_status(
        self, job_id: str, statuses: int | str | Iterable[int | str], timeout: float = 10.0
    ) -> JobInfo:
        """Block until the worker has reported (update_job) one of ``statuses`` for the job.
        Statuses are JobStatus values or names ("JS_RUNNING", "running", ...)."""
        wanted = _job_statuses(statuses)

        def ready() -> JobInfo | None:
            job = self._state.jobs.get(job_id)
            if job and any(u.status in wanted for u in job.status_updates):
                return job.copy()
            return None

        def describe() -> str:
            job = self._state.jobs.get(job_id)
            seen = [agent.JobStatus.Name(u.status) for u in job.status_updates] if job else None
            return f"job {job_id} never reported {sorted(wanted)}; reported: {seen}"

        return self._state.wait(ready, timeout, describe)


def _copy_worker(w: WorkerInfo) -> WorkerInfo:
    return WorkerInfo(**vars(w))


def _job_statuses(statuses: int | str | Iterable[int | str]) -> set[int]:
    items = [statuses] if isinstance(statuses, int | str) else list(statuses)
    out: set[int] = set()
    for item in items:
        if isinstance(item, int):
            out.add(item)
        else:
            name = item.upper()
            out.add(agent.JobStatus.Value(name if name.startswith("JS_") else "JS_" + name))
    return out
