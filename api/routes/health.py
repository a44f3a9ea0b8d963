"""Liveness and readiness probes, and the Prometheus metrics.

Invariant: nothing served here without a token names a host or quotes an error: readiness
reports `ok` or a short generic state per check, its details (exception text, which may
name the LiveKit host) only to a caller with the metrics or admin token; `/metrics` needs
the metrics token when `OUTDIAL_METRICS_TOKEN` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response
from livekit.protocol.room import ListRoomsRequest
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth import bearer_token
from api.deps import LiveKitDep, SettingsDep, StoreDep
from api.errors import unauthorized
from api.metrics import (
    CALLS_WAITING,
    PACER_LAG,
    QUEUE_DEPTH,
    SCHEDULED_CALLS,
    SCHEDULER_LAG,
    TRUNK_SLOTS_IN_USE,
)
from api.schemas.health import Liveness, Readiness, ReadinessChecks
from api.security import secrets_match
from api.settings import Settings
from api.store.messages import DIAL_QUEUE, RELAY_QUEUE
from api.store.probes import ping, read_backlog, read_pacing_backlog
from api.store.webhooks import WebhookHealth, read_webhook_health

router = APIRouter(tags=["health"])
_PROBE_TIMEOUT_SECONDS = 2.0
# What an unauthenticated caller sees of a failed check (details need a token).
_GENERIC_ERROR = "error"
AuthorizationHeader = Annotated[str | None, Header()]


def _holds_token(authorization: str | None, *tokens: str) -> bool:
    """Whether the bearer token is one of the configured (non-empty) `tokens`."""
    token = bearer_token(authorization)
    return token is not None and any(secrets_match(token, known) for known in tokens if known)


def _may_see_details(settings: Settings, authorization: str | None) -> bool:
    return _holds_token(authorization, settings.metrics_token, settings.admin_token)


def _public(state: str) -> str:
    """A check's state without its details: `error: ConnectionError: <host>...` -> `error`."""
    return _GENERIC_ERROR if state.startswith("error") else state


@router.get("/healthz")
async def healthz() -> Liveness:
    return Liveness(status="ok")


async def _check(probe: Any) -> str:
    try:
        await asyncio.wait_for(probe, _PROBE_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means not ready; the reason is reported
        return f"error: {type(exc).__name__}: {exc}"[:200]
    return "ok"


async def _webhooks_state(store: Any) -> str:
    """`missing` once the reconciler settled a call that LiveKit's webhooks never reported
    (after the last webhook that did arrive); informational, never fails readiness."""
    try:
        health: WebhookHealth = await asyncio.wait_for(
            read_webhook_health(store), _PROBE_TIMEOUT_SECONDS
        )
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    if health.missing:
        return "missing: calls are settled without LiveKit webhooks (check the webhook URL)"
    return "ok" if health.last_received_ms else "none received yet"


@router.get(
    "/readyz",
    response_model=None,
    responses={
        200: {"model": Readiness, "description": "Ready, or degraded (LiveKit unreachable)"},
        503: {"model": Readiness, "description": "Not ready: Redis is unreachable"},
    },
)
async def readyz(
    store: StoreDep,
    settings: SettingsDep,
    livekit: LiveKitDep,
    authorization: AuthorizationHeader = None,
) -> JSONResponse:
    # Naming a room that never exists keeps the LiveKit probe cheap on big deployments.
    livekit_probe = livekit.room.list_rooms(ListRoomsRequest(names=["outdial-readiness-probe"]))
    redis_state, livekit_state, webhooks_state = await asyncio.gather(
        _check(ping(store)), _check(livekit_probe), _webhooks_state(store)
    )
    checks = ReadinessChecks(
        redis=redis_state, livekit=livekit_state, livekit_webhooks=webhooks_state
    )
    if not _may_see_details(settings, authorization):
        checks = ReadinessChecks.model_validate({name: _public(state) for name, state in checks})
    # Only Redis decides: without it this process cannot serve. LiveKit is shared by every
    # replica, so failing on it would take the whole API (call status, webhooks, queueing)
    # out of the Service during a LiveKit outage; it is reported as `degraded` instead.
    if redis_state != "ok":
        readiness, code = Readiness(status="not_ready", checks=checks), 503
    else:
        ready = livekit_state == "ok"
        readiness, code = Readiness(status="ready" if ready else "degraded", checks=checks), 200
    return JSONResponse(readiness.model_dump(mode="json"), status_code=code)


async def _sample_dialer(store: Any) -> None:
    pacing = await read_pacing_backlog(store)
    for reason, count in pacing.waiting.items():
        CALLS_WAITING.labels(reason).set(count)
    # Only trunks using slots now are series: one that went idle leaves the scrape.
    TRUNK_SLOTS_IN_USE.clear()
    for trunk, count in pacing.slots.items():
        TRUNK_SLOTS_IN_USE.labels(trunk).set(count)
    PACER_LAG.set(pacing.pacer_lag_s)
    SCHEDULED_CALLS.labels("due").set(pacing.scheduled_due)
    SCHEDULED_CALLS.labels("later").set(pacing.scheduled_later)
    SCHEDULER_LAG.set(pacing.scheduler_lag_s)


@router.get("/metrics", include_in_schema=False)
async def metrics(
    store: StoreDep, settings: SettingsDep, authorization: AuthorizationHeader = None
) -> Response:
    if settings.metrics_token and not _holds_token(authorization, settings.metrics_token):
        raise unauthorized("metrics token missing or wrong (OUTDIAL_METRICS_TOKEN)")
    try:
        backlog = await read_backlog(store)
        QUEUE_DEPTH.labels(DIAL_QUEUE).set(backlog.dial_messages)
        QUEUE_DEPTH.labels(RELAY_QUEUE).set(backlog.relay_messages)
        QUEUE_DEPTH.labels("relay_retries").set(backlog.relay_retries)
        QUEUE_DEPTH.labels("calls_with_deadline").set(backlog.calls_with_deadline)
    except Exception:  # metrics must render even while Redis is down
        pass
    with contextlib.suppress(Exception):  # as above: the last sampled values stay
        await _sample_dialer(store)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
