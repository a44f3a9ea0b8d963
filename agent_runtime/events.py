"""Reports agent events to the API without ever holding up the call.

`EventReporter.send()` only enqueues; one background task per job POSTs the events in
order (the API numbers them as they arrive), retrying 5xx and connection errors with
backoff. The event id makes a retried POST idempotent on the API side. An unreachable API
never ends the call: the worst case is events that are logged and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from .contract import AgentEvent

logger = logging.getLogger("outdial.agent.events")

# The token is wrong, or the call is unknown: no later event of this call can succeed.
_FINAL_STATUSES = frozenset({401, 403, 404})


@dataclass(frozen=True)
class ReporterOptions:
    max_attempts: int = 8
    initial_backoff_seconds: float = 0.2
    max_backoff_seconds: float = 5.0
    request_timeout_seconds: float = 5.0
    max_queue_size: int = 1000


class EventReporter:
    """One per call: owns an aiohttp session and a sender task, both closed by `aclose()`."""

    def __init__(
        self,
        events_url: str,
        event_token: str,
        *,
        options: ReporterOptions | None = None,
    ) -> None:
        self._url = events_url
        self._token = event_token
        self._opts = options or ReporterOptions()
        self._queue: asyncio.Queue[AgentEvent] = asyncio.Queue(self._opts.max_queue_size)
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._rejected = False
        self._closed = False
        self.delivered: list[AgentEvent] = []

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def send(self, event: AgentEvent) -> None:
        """Queue `event` for delivery; returns at once."""
        if self._closed or self._rejected:
            logger.warning("event not sent (reporter closed)", extra={"event_type": event.type})
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            logger.error("event queue full, dropping event", extra={"event_type": event.type})
            return
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outdial-event-reporter")

    async def flush(self, timeout: float) -> bool:
        """Wait until every queued event was delivered (or given up); False on timeout."""
        if self._task is None:
            return True
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            return False
        return True

    async def aclose(self, timeout: float = 5.0) -> None:
        """Flush what is queued for at most `timeout` seconds, then stop."""
        self._closed = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._queue.join(), timeout)
            except TimeoutError:
                logger.warning(
                    "event flush timed out, dropping events", extra={"pending": self.pending}
                )
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                if not self._rejected:
                    await self._deliver(event)
            except Exception:
                logger.exception("unexpected error while reporting an event")
            finally:
                self._queue.task_done()

    async def _deliver(self, event: AgentEvent) -> None:
        body = event.model_dump(mode="json")
        backoff = self._opts.initial_backoff_seconds
        for attempt in range(1, self._opts.max_attempts + 1):
            outcome = await self._post(body)
            if outcome == "ok":
                self.delivered.append(event)
                return
            if outcome == "final":
                return
            if attempt < self._opts.max_attempts:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._opts.max_backoff_seconds)
        logger.error(
            "giving up on event after %d attempts",
            self._opts.max_attempts,
            extra={"event_type": event.type, "event_id": event.id},
        )

    async def _post(self, body: dict[str, Any]) -> str:
        """One attempt: "ok", "retry", or "final" (do not retry this event)."""
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self._opts.request_timeout_seconds)
            self._session = aiohttp.ClientSession(timeout=timeout)
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with self._session.post(self._url, json=body, headers=headers) as resp:
                if resp.status < 300:
                    return "ok"
                text = (await resp.text())[:200]
        except (TimeoutError, aiohttp.ClientError) as exc:
            logger.warning("event POST failed: %s", exc, extra={"event_type": body["type"]})
            return "retry"
        extra = {"event_type": body["type"], "status": resp.status, "response": text}
        if resp.status in _FINAL_STATUSES:
            logger.error("API refused the event token or call; not reporting further", extra=extra)
            self._rejected = True
            return "final"
        if resp.status >= 500 or resp.status == 429:
            logger.warning("API answered %d, retrying", resp.status, extra=extra)
            return "retry"
        logger.error("API rejected the event", extra=extra)
        return "final"
