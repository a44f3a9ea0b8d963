"""`POST /v1/calls/single-phone-call` (Contactship's shape) against a live API: the vendor's
example becomes a dial with the contact as variables; `delay` and `schedule` scheduled
calls; a bad body names every wrong field; no input is ever a 5xx."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from api.security import verify_signature
from api.settings import Settings
from tests.callback_receiver import Receiver
from tests.compat import CALLER, CompatTenant, compat_tenant, dial_of
from tests.support import WorkerProcess, async_wait_until, redis_snapshot

PATH = "/v1/calls/single-phone-call"


@pytest.fixture
async def ws(client: httpx.AsyncClient) -> CompatTenant:
    return await compat_tenant(client)


def example(ws: CompatTenant, **changes: Any) -> dict[str, Any]:
    """The vendor's documented example request body."""
    body = {
        "from_number": CALLER,
        "to_number": "+14155552671",
        "full_name": "Ada Lovelace",
        "agent_id": ws.agent_id,
        "email": "ada@example.com",
        "country": "US",
        "delay": 0,
        "additional_data": [
            {"key": "topic", "value": "the dentist"},
            {"key": "visits", "value": 3},
        ],
        "metadata": {"crm_id": "lead-42"},
    }
    return body | changes


async def post(client: httpx.AsyncClient, ws: CompatTenant, body: Any) -> httpx.Response:
    return await client.post(PATH, json=body, headers={"Authorization": f"Token {ws.key}"})


@pytest.mark.dial_immediately
async def test_the_vendor_example_is_dialed_with_the_contact_as_variables(
    client: httpx.AsyncClient, ws: CompatTenant, lk: Any, worker: WorkerProcess
) -> None:
    response = await post(client, ws, example(ws))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.keys() == {"call_id", "agent_id", "contact_id", "created_at"}
    assert (body["agent_id"], body["contact_id"]) == (ws.agent_id, None)
    assert body["created_at"].endswith("Z")
    view = (await ws.tenant.request("GET", f"/v1/api/call/{body['call_id']}")).json()
    contract, dial = await dial_of(lk, view["roomName"])
    assert contract.dynamic_variables == {
        "full_name": "Ada Lovelace",
        "email": "ada@example.com",
        "country": "US",
        "topic": "the dentist",
        "visits": 3,
    }
    assert contract.metadata == {"crm_id": "lead-42"}
    assert (dial.sip_call_to, dial.sip_number) == ("+14155552671", CALLER)


async def test_webhook_url_receives_outdials_signed_events(
    client: httpx.AsyncClient, ws: CompatTenant, worker: WorkerProcess
) -> None:
    receiver = await Receiver().start()
    try:
        response = await post(client, ws, example(ws, webhook_url=f"{receiver.url}/hook"))
        assert response.status_code == 200, response.text
        call_id = response.json()["call_id"]
        await async_wait_until(lambda: receiver.delivered("/hook"), timeout=60, what="callback")
        first = receiver.attempts("/hook")[0]
        assert first.payload["callId"] == call_id
        assert first.payload["metadata"] == {"crm_id": "lead-42"}
        signature = first.headers["X-Outdial-Signature"]
        assert verify_signature(first.body, signature, ws.tenant.webhook_secret)
    finally:
        await receiver.stop()


async def test_delay_and_schedule_make_scheduled_calls(
    client: httpx.AsyncClient, ws: CompatTenant
) -> None:
    at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    cases = [
        ({"delay": 90}, None),
        ({"schedule": {"date": at.isoformat()}}, at),
        ({"schedule": {"datetime": at.replace(tzinfo=None).isoformat()}}, at),
    ]
    for change, expected in cases:
        before = datetime.now(UTC)
        response = await post(client, ws, example(ws, **change))
        assert response.status_code == 200, response.text
        view = (await ws.tenant.request("GET", f"/v1/api/call/{response.json()['call_id']}")).json()
        assert view["status"] == "scheduled", change
        due = datetime.fromisoformat(view["scheduledAt"].replace("Z", "+00:00"))
        if expected is None:
            assert before + timedelta(minutes=89) < due < datetime.now(UTC) + timedelta(minutes=91)
        else:
            assert due == expected


BAD_BODIES = [
    ({"full_name": None}, ["full_name is required"]),
    (
        {"full_name": None, "to_number": None, "agent_id": 7},
        ["to_number is required", "agent_id must be a string", "full_name is required"],
    ),
    (
        {"schedule": {"time": "10:00"}},
        [
            "schedule.time is not accepted: send schedule.date or .datetime",
            "schedule must hold one of date or datetime",
        ],
    ),
    ({"schedule": {"date": "tomorrow"}}, ["schedule.date must be an ISO 8601 date or time"]),
    ({"schedule": "2026-12-24"}, ['schedule must be an object: {"date": "<ISO 8601>"}']),
    (
        {"delay": 5, "schedule": {"date": "2030-01-01T10:00:00Z"}},
        ["send delay or schedule, not both"],
    ),
    ({"delay": -1}, ["delay must be 0 to 43200 minutes"]),
    ({"delay": 1.5}, ["delay must be a whole number of minutes"]),
    (
        {"additional_data": [{"key": "topic", "value": 1}, {"key": "topic", "value": 2}]},
        ["additional_data[1].key 'topic' is given twice"],
    ),
    (
        {"additional_data": [{"key": "email", "value": "x"}]},
        ["additional_data[0].key 'email' is given twice"],
    ),
    (
        {"additional_data": [{"key": "first name", "value": "x"}]},
        ["additional_data[0].key 'first name' is not a variable name"],
    ),
    (
        {"additional_data": [{"key": "x", "value": {"a": 1}}]},
        ["additional_data[0].value must be a string, a number or a boolean"],
    ),
    ({"additional_data": {"key": "x"}}, ["additional_data must be a list of {key, value}"]),
    ({"email": "not-an-email"}, ["email must be an email address"]),
    ({"metadata": [1]}, ["metadata must be an object"]),
]


@pytest.mark.parametrize(("change", "messages"), BAD_BODIES)
async def test_a_bad_body_names_every_wrong_field_and_stores_nothing(
    client: httpx.AsyncClient,
    ws: CompatTenant,
    settings: Settings,
    redis_client: redis.Redis,
    change: dict[str, Any],
    messages: list[str],
) -> None:
    before = redis_snapshot(redis_client, settings.redis_prefix)
    response = await post(client, ws, example(ws, **change))
    assert response.status_code == 400, response.text
    assert response.json() == {"statusCode": 400, "error": "Bad Request", "message": messages}
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


@pytest.mark.parametrize(
    ("change", "status", "error", "message"),
    [
        ({"from_number": "+19995550100"}, 400, "Bad Request", "from_number: "),
        ({"to_number": "12"}, 400, "Bad Request", "to_number: "),
        ({"to_number": "1" * 80}, 400, "Bad Request", ["to_number: "]),
        ({"agent_id": "agent_nobody"}, 404, "Not Found", "agent_id: "),
        ({"agent_id": "bad id!"}, 400, "Bad Request", ["agent_id: "]),
        ({"webhook_url": "ftp://example.com/hook"}, 400, "Bad Request", "webhook_url: "),
        ({"additional_data": [{"key": "k" * 70, "value": 1}]}, 400, "Bad Request", None),
    ],
)
async def test_outdials_refusals_keep_contactships_shape_and_its_field_names(
    client: httpx.AsyncClient,
    ws: CompatTenant,
    change: dict[str, Any],
    status: int,
    error: str,
    message: str | list[str] | None,
) -> None:
    response = await post(client, ws, example(ws, **change))
    assert response.status_code == status, response.text
    body = response.json()
    assert body.keys() == {"statusCode", "error", "message"}
    assert (body["statusCode"], body["error"]) == (status, error)
    if isinstance(message, list):  # a native validation error: one entry per field
        assert [m[: len(message[0])] for m in body["message"]] == message
    elif message is not None:
        assert body["message"].startswith(message), body["message"]
    for native in ("call_agent_id", "dynamic_variables", "callback_url", "'to'"):
        assert native not in response.text


async def test_a_bad_key_is_a_401(client: httpx.AsyncClient, ws: CompatTenant) -> None:
    for headers in ({}, {"Authorization": "Token nope"}, {"x-api-key": "nope"}):
        response = await client.post(PATH, json=example(ws), headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "Unauthorized"


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = [
    "from_number",
    "to_number",
    "full_name",
    "agent_id",
    "email",
    "country",
    "delay",
    "schedule",
    "additional_data",
    "webhook_url",
    "metadata",
]


async def test_no_input_is_ever_a_server_error(client: httpx.AsyncClient, ws: CompatTenant) -> None:
    bodies: list[Any] = []

    @hypothesis_settings(
        max_examples=150, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.dictionaries(st.sampled_from(_FIELDS), _json, max_size=6) | _json)
    def collect(body: Any) -> None:
        bodies.append(body)

    collect()
    for body in bodies:
        if isinstance(body, dict):
            body = example(ws) | body
        response = await post(client, ws, body)
        assert response.status_code < 500, (body, response.text)
        assert response.json().keys() in (
            {"statusCode", "error", "message"},
            {"call_id", "agent_id", "contact_id", "created_at"},
        )
