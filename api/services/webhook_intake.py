"""LiveKit webhooks in: verify, de-duplicate, map the room to its call, apply the events.

Verification runs on the exact raw body (the token's `sha256` claim covers its bytes).
A webhook id is marked seen only after its events were applied, so a webhook that failed
half-way is applied in full when LiveKit retries it (the event ids make that idempotent).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from google.protobuf.json_format import ParseError
from livekit import api as lkapi
from livekit.protocol.webhook import WebhookEvent

from api.services.call_end import count_call_end, drop_room
from api.services.webhook_events import plan_webhook, room_name_of
from api.settings import Settings
from api.store.base import Store
from api.store.deadlines import push_deadline
from api.store.events import apply_event, mark_agent_ready
from api.store.webhooks import mark_webhook_seen, note_webhook_arrival


class WebhookRefused(Exception):
    """The webhook is not from our LiveKit server (or not readable); nothing was changed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    outcome: Literal["applied", "duplicate", "ignored"]
    call_id: str | None = None
    applied: tuple[str, ...] = ()


def verify_webhook(settings: Settings, raw_body: bytes, authorization: str | None) -> WebhookEvent:
    if not authorization:
        raise WebhookRefused(401, "missing Authorization")
    try:
        body = raw_body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookRefused(401, "body is not UTF-8, so it cannot match its signature") from exc
    verifier = lkapi.TokenVerifier(settings.livekit_api_key, settings.livekit_api_secret)
    try:
        webhook = lkapi.WebhookReceiver(verifier).receive(body, authorization)
    except ParseError as exc:  # signed by our server, yet not a webhook event
        raise WebhookRefused(400, f"webhook body is not a LiveKit event: {exc}") from exc
    except Exception as exc:  # the SDK raises bare Exception / jwt errors for bad tokens
        raise WebhookRefused(401, f"webhook signature not valid: {exc}") from exc
    # The signature proves who sent the body, not when: a recorded webhook would otherwise
    # apply again (under a fresh event id) for as long as the body is at hand.
    if not webhook.created_at:
        raise WebhookRefused(401, "webhook has no created_at, so its age is unknown")
    max_age = settings.livekit_webhook_max_age_seconds
    age = int(time.time()) - webhook.created_at
    if abs(age) > max_age:
        raise WebhookRefused(
            401, f"webhook created_at is {age} s old, outside the {max_age} s window"
        )
    return webhook


async def handle_webhook(
    store: Store, settings: Settings, livekit: lkapi.LiveKitAPI, webhook: WebhookEvent
) -> WebhookOutcome:
    room_name = room_name_of(webhook)
    arrival = await note_webhook_arrival(store, webhook.id, room_name)
    if arrival.seen:
        return WebhookOutcome("duplicate")
    call = arrival.call
    if call is None:
        outcome = WebhookOutcome("ignored")
    else:
        plan = plan_webhook(webhook, call)
        applied = []
        for spec in plan.events:
            apply = mark_agent_ready if spec.type == "agent.ready" else apply_event
            result = await apply(store, call.id, spec)
            count_call_end(result)
            if result.applied:
                applied.append(spec.type)
        if plan.delete_room:
            await drop_room(livekit, room_name, call.id)
        if plan.recheck:
            soon_ms = int(time.time() * 1000) + settings.agent_answer_grace_seconds * 1000
            await push_deadline(store, call.id, soon_ms)
        outcome = WebhookOutcome("applied", call.id, tuple(applied))
    if webhook.id:
        await mark_webhook_seen(store, webhook.id)
    return outcome
