"""The relay actors: drain a call's callbacks in order, and one-off redeliveries.

`relay_call` messages are written by `apply_event` (when the call's relay flag was unset)
and by the scheduler (when a parked call is due). Each drain ends with the flag dropped,
the call parked in `relay:due`, or (on a crash) its message unacked for redelivery.
"""

from __future__ import annotations

import asyncio
from typing import Any

import dramatiq

from api.jobs.resources import worker_callback_session, worker_settings, worker_store
from api.jobs.thread_share import RELAY_SHARE, SHARE_RETRY_MS
from api.relay.drain import DRAIN_BUDGET_SECONDS, ERROR_RETRY_MS, drain_call
from api.relay.redeliver import redeliver_event
from api.relay.steps import release
from api.store.messages import REDELIVER_ACTOR, RELAY_ACTOR, RELAY_QUEUE

# Dial jobs (priority 0) go first when a worker thread frees up.
_RELAY_PRIORITY = 10
# Room for a full drain budget plus one attempt in flight when the budget runs out.
_TIME_LIMIT_MS = int((DRAIN_BUDGET_SECONDS + worker_settings().callback_timeout_seconds) * 1000)
_TIME_LIMIT_MS += 30_000


@dramatiq.actor(
    queue_name=RELAY_QUEUE,
    actor_name=RELAY_ACTOR,
    priority=_RELAY_PRIORITY,
    max_retries=20,
    min_backoff=1_000,
    max_backoff=60_000,
    time_limit=_TIME_LIMIT_MS,
    on_retry_exhausted="relay_exhausted",
)
async def relay_call(call_id: str) -> None:
    await RELAY_SHARE.run(
        lambda: drain_call(worker_store(), worker_settings(), worker_callback_session(), call_id),
        # Without a slot of the relay's share, the call waits in `relay:due` briefly.
        lambda: release(worker_store(), call_id, token="", retry_in_ms=SHARE_RETRY_MS),
    )


@dramatiq.actor(
    queue_name=RELAY_QUEUE,
    priority=_RELAY_PRIORITY,
    max_retries=20,
    min_backoff=1_000,
    max_backoff=60_000,
)
async def relay_exhausted(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
    """Every retry of a drain failed: park the call so its flag never outlives all messages."""
    await release(worker_store(), message["args"][0], token="", retry_in_ms=ERROR_RETRY_MS)


@dramatiq.actor(
    queue_name=RELAY_QUEUE,
    actor_name=REDELIVER_ACTOR,
    priority=_RELAY_PRIORITY,
    max_retries=3,
    min_backoff=1_000,
    max_backoff=10_000,
    time_limit=_TIME_LIMIT_MS,
)
async def relay_redeliver(call_id: str, sequence: str) -> None:
    async def later(delay_ms: int) -> None:
        await asyncio.to_thread(
            relay_redeliver.send_with_options, args=(call_id, sequence), delay=delay_ms
        )

    async def run() -> None:
        # No in-flight slot of the workspace free: the message comes back, no thread waits.
        retry_ms = await redeliver_event(
            worker_store(), worker_settings(), worker_callback_session(), call_id, int(sequence)
        )
        if retry_ms is not None:
            await later(retry_ms)

    await RELAY_SHARE.run(run, lambda: later(SHARE_RETRY_MS))
