"""`POST /v1/livekit/webhook`: where the LiveKit server reports rooms, participants, jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request

from api.deps import LiveKitDep, SettingsDep, StoreDep
from api.errors import ApiError
from api.openapi import STORAGE, error_responses
from api.schemas.webhooks import WebhookApplied
from api.services.webhook_intake import WebhookRefused, handle_webhook, verify_webhook

router = APIRouter(prefix="/v1/livekit", tags=["livekit"])


@router.post(
    "/webhook",
    responses=error_responses(
        STORAGE,
        {
            400: "BAD_REQUEST: signed, but not a LiveKit event",
            401: "UNAUTHORIZED: signature missing or not valid, or created_at outside the window",
            413: "PAYLOAD_TOO_LARGE",
        },
    ),
)
async def livekit_webhook(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    livekit: LiveKitDep,
    authorization: Annotated[str | None, Header()] = None,
) -> WebhookApplied:
    try:
        webhook = verify_webhook(settings, await request.body(), authorization)
    except WebhookRefused as exc:
        code = "UNAUTHORIZED" if exc.status == 401 else "BAD_REQUEST"
        raise ApiError(exc.status, code, str(exc)) from exc
    outcome = await handle_webhook(store, settings, livekit, webhook)
    return WebhookApplied(
        status="success",
        outcome=outcome.outcome,
        call_id=outcome.call_id,
        applied=list(outcome.applied),
    )
