"""The FastAPI application: `uvicorn api.app:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from fastapi import FastAPI

from api.errors import install_error_handlers
from api.logs import configure_logging
from api.middleware import BodyLimit
from api.openapi import document
from api.resources import Resources
from api.routes import (
    admin,
    agents,
    billing,
    call_batch,
    calls,
    dnc,
    dnc_import,
    event_stream,
    events,
    health,
    internal,
    limits,
    livekit_webhook,
    numbers,
)
from api.routes.call_accept import ACCEPT_CALL_PATH, AcceptCallRoute, accept_call_openapi
from api.routes.call_batch import CALL_BATCH_PATH, batch_components
from api.routes.compat import ROUTERS as COMPAT_ROUTERS
from api.routes.compat import SELF_BOUNDED_PATHS
from api.routes.dnc_import import DNC_IMPORT_PATH
from api.routes.docs_ui import install_docs
from api.schemas.call_batch import MAX_BATCH_BODY_BYTES
from api.schemas.calls import MAX_BODY_BYTES
from api.schemas.dnc import DNC_BODY_LIMIT
from api.settings import Settings, get_settings

# Agents report whole transcripts at the end of a call; everything else stays small.
INTERNAL_BODY_LIMIT = 2 * 1024 * 1024


def create_app(
    settings: Settings | None = None, *, livekit_session: aiohttp.ClientSession | None = None
) -> FastAPI:
    """The app; `livekit_session`, if given, carries its LiveKit requests (its owner closes
    it; e.g. one with its own resolver), else the app opens its own."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The app's loop owns them: made on first use, closed here (api/resources.py).
        app.state.resources = Resources(settings, livekit_session=livekit_session)
        try:
            yield
        finally:
            await app.state.resources.aclose()

    # Outdial exports Prometheus metrics (/metrics); FastAPI's own OpenTelemetry hooks cost
    # time on every request, even with no provider configured.
    app = FastAPI(
        title="Outdial",
        version="0.1.0",
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # served from installed files, not a CDN (api/routes/docs_ui.py)
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # Routes are matched in order: the per-call machine routes (the agents' events, LiveKit's
    # webhooks: several requests per call) first, before dozens of client routes are tried.
    for router in (
        internal.router,
        livekit_webhook.router,
        health.router,
        admin.router,
        limits.admin_router,
        billing.admin_router,
        agents.router,
        numbers.router,
        dnc.router,
        dnc_import.router,
        calls.router,
        call_batch.router,
        events.router,
        event_stream.router,
        limits.router,
        billing.router,
        *COMPAT_ROUTERS,
    ):
        app.include_router(router)
    install_docs(app, "Outdial")
    # Added before BodyLimit, so it runs inside it: the accept path has the same body limit.
    app.add_middleware(AcceptCallRoute)
    _document_accept_call(app)
    app.add_middleware(
        BodyLimit,
        default_limit=MAX_BODY_BYTES,
        limits={
            "/v1/internal/": INTERNAL_BODY_LIMIT,
            CALL_BATCH_PATH: MAX_BATCH_BODY_BYTES,
            "/v1/api/dnc": DNC_BODY_LIMIT,
        },
        # the CSV import bounds its upload itself (OUTDIAL_CSV_MAX_BYTES)
        self_bounded=(*SELF_BOUNDED_PATHS, DNC_IMPORT_PATH),
    )
    return app


_MACHINE = (internal.router.prefix, livekit_webhook.router.prefix)


def _document_accept_call(app: FastAPI) -> None:
    """Adds `POST /v1/api/call` (a plain ASGI route) to the generated OpenAPI schema and the
    call body the batch route's items refer to (that route reads its body itself), then
    completes the whole schema (`api.openapi.document`: credentials, errors)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema["paths"].setdefault(ACCEPT_CALL_PATH, {})["post"] = accept_call_openapi()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, component in batch_components().items():
                components.setdefault(name, component)
            # The machine routes are matched first (see create_app) but read last.
            paths = schema["paths"]
            schema["paths"] = dict(sorted(paths.items(), key=lambda p: p[0].startswith(_MACHINE)))
            # `Error`, which it refers to, is a component already: FastAPI routes declare it
            app.openapi_schema = document(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


app = create_app()
