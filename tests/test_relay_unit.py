"""Fast checks of the relay's pure parts: classification, backoff, state, payload, SSRF."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from api.relay.http import ForbiddenAddressError, GuardedResolver, refused_literal
from api.relay.payload import USER_AGENT, CallTarget, event_body, event_headers
from api.relay.policy import (
    JITTER_FRACTION,
    MAX_RETRY_AFTER_SECONDS,
    AttemptResult,
    outcome_for_status,
    parse_retry_after,
    retry_delay,
)
from api.relay.state import DeliveryState, after_attempt
from api.security import verify_signature
from api.store.drain import NextStep, _next_step

SCHEDULE = [1.0, 5.0, 30.0]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (299, "delivered"),
        (301, "failed"),
        (400, "failed"),
        (401, "failed"),
        (404, "failed"),
        (410, "failed"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
    ],
)
def test_outcome_for_status(status: int, outcome: str) -> None:
    assert outcome_for_status(status) == outcome


def test_retry_after_seconds_date_garbage_and_cap() -> None:
    now = time.time()
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("999999", now) == MAX_RETRY_AFTER_SECONDS
    # An HTTP date has whole seconds: 120 s after `now`, truncated, is (119, 120] away.
    later = format_datetime(datetime.fromtimestamp(int(now) + 120, UTC), usegmt=True)
    assert 119 < parse_retry_after(later, now) <= 120


def test_retry_delay_follows_schedule_with_jitter_and_repeats_last() -> None:
    rng = random.Random(7)
    for attempts, base in [(1, 1.0), (2, 5.0), (3, 30.0), (9, 30.0)]:
        for _ in range(50):
            delay = retry_delay(attempts, SCHEDULE, rng=rng)
            assert base * (1 - JITTER_FRACTION) <= delay <= base * (1 + JITTER_FRACTION)
    assert retry_delay(1, SCHEDULE, retry_after=60, rng=rng) == 60


def test_after_attempt_moves_state() -> None:
    now = 1_000_000
    start = DeliveryState()
    delivered = after_attempt(start, AttemptResult("delivered", 200), now, SCHEDULE, 86_400)
    assert (delivered.state, delivered.attempts, delivered.last_status) == ("delivered", 1, 200)

    refused = after_attempt(start, AttemptResult("failed", 400, "HTTP 400"), now, SCHEDULE, 86_400)
    assert (refused.state, refused.next_attempt_ms, refused.last_error) == (
        "failed",
        None,
        "HTTP 400",
    )

    retry = after_attempt(start, AttemptResult("retry", 503, "HTTP 503"), now, SCHEDULE, 86_400)
    assert retry.state == "pending" and retry.first_attempt_ms == now
    assert now + 800 <= retry.next_attempt_ms <= now + 1200

    again = after_attempt(retry, AttemptResult("retry", None, "refused"), now + 1000, SCHEDULE, 1)
    assert again.state == "failed" and again.attempts == 2  # window (1 s) used up
    assert DeliveryState.from_json(again.to_json()) == again


def _target() -> CallTarget:
    return CallTarget(
        call_id="c1",
        workspace_id="ws_1",
        room_name="ag-room",
        callback_url="https://example.com/hook",
        metadata_json='{"crm":{"id":42},"tags":["a"]}',
        webhook_secret="whsec_test",
    )


def test_event_body_and_signed_headers() -> None:
    event = {
        "id": "e1",
        "type": "call.ended",
        "sequence": 5,
        "status": "completed",
        "timestamp": "2025-01-01T00:00:00.000Z",
        "data": {"reason": "hangup_by_callee"},
    }
    body = event_body(event, _target())
    assert json.loads(body) == {
        "id": "e1",
        "type": "call.ended",
        "sequence": 5,
        "timestamp": "2025-01-01T00:00:00.000Z",
        "callId": "c1",
        "workspaceId": "ws_1",
        "roomName": "ag-room",
        "status": "completed",
        "data": {"reason": "hangup_by_callee"},
        "metadata": {"crm": {"id": 42}, "tags": ["a"]},
    }
    headers = event_headers(event, body, "whsec_test")
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == USER_AGENT and USER_AGENT.startswith("Outdial/")
    assert headers["X-Outdial-Event"] == "call.ended"
    assert headers["X-Outdial-Event-Id"] == "e1"
    assert verify_signature(body, headers["X-Outdial-Signature"], "whsec_test")
    assert not verify_signature(body + b" ", headers["X-Outdial-Signature"], "whsec_test")


def test_ip_literals_are_checked_before_connecting() -> None:
    assert "non-public" in refused_literal("http://127.0.0.1:9/x", allow_private=False)
    assert "non-public" in refused_literal("http://[::1]:9/x", allow_private=False)
    assert "non-public" in refused_literal("http://169.254.169.254/", allow_private=False)
    assert refused_literal("http://127.0.0.1:9/x", allow_private=True) is None
    assert refused_literal("https://93.184.216.34/", allow_private=False) is None
    assert refused_literal("http://localhost:9/", allow_private=False) is None  # resolver's job
    assert "http or https" in refused_literal("ftp://example.com/", allow_private=False)


async def test_resolver_refuses_names_resolving_to_private_addresses() -> None:
    guarded = GuardedResolver(allow_private=False)
    try:
        with pytest.raises(ForbiddenAddressError, match="non-public"):
            await guarded.resolve("localhost", 80)
    finally:
        await guarded.close()
    allowed = GuardedResolver(allow_private=True)
    try:
        assert await allowed.resolve("localhost", 80)
    finally:
        await allowed.close()


def test_a_drain_step_is_one_the_relay_knows() -> None:
    """A drain script's reply becomes a typed step in one place (`StepKind`); a kind the relay
    does not know is refused there, not passed on as a move."""
    assert _next_step(["done"]) == NextStep("done")
    assert _next_step(["event", '{"sequence":1}', ""]) == NextStep("event", '{"sequence":1}')
    with pytest.raises(RuntimeError, match="unknown step 'vanished'"):
        _next_step(["vanished"])
