"""POST /v1/api/calls/batch over real HTTP against real Redis (no worker running): each item
answered as POST /v1/api/call answers its body, in order; whole-batch refusals store
nothing; the workspace's own policy and balance per item; the batch's Idempotency-Key."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest
import redis
from pydantic import ConfigDict

from api.schemas.call_batch import (
    BatchCallAccepted,
    BatchCallRefused,
    CallBatchAccepted,
)
from api.settings import Settings
from api.store.lean_redis import LeanRedis
from tests.conftest import Tenant, create_tenant
from tests.support import ADMIN_TOKEN, redis_snapshot

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BATCH = "/v1/api/calls/batch"


class ExactlyAccepted(BatchCallAccepted):
    model_config = ConfigDict(extra="forbid")


class ExactlyRefused(BatchCallRefused):
    model_config = ConfigDict(extra="forbid")


class ExactlyBatch(CallBatchAccepted):
    """`CallBatchAccepted` with no field beyond the documented ones, in each result too."""

    model_config = ConfigDict(extra="forbid")
    results: list[ExactlyAccepted | ExactlyRefused]  # type: ignore[assignment]


def stored(redis_client: redis.Redis, settings: Settings, tenant: Tenant) -> tuple[int, int]:
    """(calls in the workspace index, messages in the dial queue)."""
    calls = redis_client.zcard(f"{settings.redis_prefix}:ws:{tenant.id}:calls")
    queued = redis_client.llen(f"{settings.broker_namespace}:outdial.dial")
    return calls, queued


async def place_batch(
    tenant: Tenant, items: Any, key: str | None = None, **kwargs: Any
) -> httpx.Response:
    """`items` as JSON (NaN written as the literal: httpx's own encoder refuses it)."""
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return await tenant.request("POST", BATCH, content=json.dumps(items), headers=headers, **kwargs)


def answer_of(response: httpx.Response) -> dict[str, Any]:
    """The batch answer, held to the documented model (no field more)."""
    assert response.status_code == 200, response.text
    ExactlyBatch.model_validate_json(response.content)
    body: dict[str, Any] = response.json()
    assert [result["index"] for result in body["results"]] == list(range(len(body["results"])))
    accepted = sum(result["status"] == "success" for result in body["results"])
    assert (body["accepted"], body["refused"]) == (accepted, len(body["results"]) - accepted)
    return body


def refusal(result: dict[str, Any]) -> tuple[int, str, str, dict[str, Any]]:
    return result["httpStatus"], result["code"], result["message"], result["details"]


def single_refusal(response: httpx.Response) -> tuple[int, str, str, dict[str, Any]]:
    body = response.json()
    return response.status_code, body["code"], body["message"], body["details"]


@pytest.fixture
async def agent(tenant: Tenant) -> dict[str, Any]:
    created = await tenant.create_agent()
    await tenant.register_number("+15105550100")
    return created


# Bodies a single accept refuses, each for its own reason, in the order its checks run.
REFUSED_BODIES = [
    {"to": "5105550123"},  # INVALID_NUMBER
    {"call_agent_id": "0" * 24},  # INVALID_AGENT
    {"from_number": "+15105550199"},  # INVALID_NUMBER_ID
    {"callback_url": "ftp://example.com/hook"},  # INVALID_CALLBACK_URL
    {"dynamic_variables": {"nested": {"a": 1}}},  # VALIDATION_ERROR
    {"dynamic_variables": {"bad-name": "x"}},  # VALIDATION_ERROR (the accept's own check)
    {"metadata": {"blob": "x" * 17_000}},  # PAYLOAD_TOO_LARGE (a section)
    {"metadata": {"blob": "x" * 70_000}},  # PAYLOAD_TOO_LARGE (the body)
    {"unexpected": 1},  # VALIDATION_ERROR
    {"max_duration_seconds": 1},  # VALIDATION_ERROR
    {"metadata": {"x": math.nan}},  # VALIDATION_ERROR (NaN)
    {"scheduled_at": "2026-12-01T09:30:00", "delay_seconds": 5},  # VALIDATION_ERROR
    {"to": "+19005550100"},  # NUMBER_NOT_ALLOWED (high cost)
]


async def test_mixed_items_are_answered_in_order_each_as_a_single_accept_would(
    tenant: Tenant, agent: dict[str, Any], redis_client: redis.Redis, settings: Settings
) -> None:
    base = {"to": "+14155552671", "call_agent_id": agent["id"]}
    refused = [base | fields for fields in REFUSED_BODIES]
    singles = []
    for body in refused:
        single = await tenant.request(
            "POST",
            "/v1/api/call",
            content=json.dumps(body),
            headers={"content-type": "application/json"},
        )
        singles.append(single_refusal(single))
    assert stored(redis_client, settings, tenant) == (0, 0)  # the singles stored nothing

    later = base | {"delay_seconds": 3600, "metadata": {"n": "later"}}
    items = [base | {"metadata": {"n": 0}}, *refused, later, "not an object", base]
    answer = answer_of(await place_batch(tenant, items))
    results = answer["results"]
    assert (answer["accepted"], answer["refused"]) == (3, len(refused) + 1)
    assert [refusal(result) for result in results[1 : len(refused) + 1]] == singles
    first, scheduled, last = results[0], results[-3], results[-1]
    assert results[-2]["code"] == "VALIDATION_ERROR"
    assert len({first["callId"], scheduled["callId"], last["callId"]}) == 3
    assert scheduled["message"].startswith("Outbound call scheduled for agent")
    for result, status in ((first, "queued"), (scheduled, "scheduled"), (last, "queued")):
        view = (await tenant.request("GET", f"/v1/api/call/{result['callId']}")).json()
        assert (view["status"], view["jobId"], view["roomName"]) == (
            status,
            result["jobId"],
            result["roomName"],
        )
    # Three calls; a dispatch message for the two due now only (in item order).
    assert stored(redis_client, settings, tenant) == (3, 2)
    queue = f"{settings.broker_namespace}:outdial.dial"
    assert redis_client.lrange(queue, 0, -1) == [
        first["jobId"].encode(),
        last["jobId"].encode(),
    ]


async def test_another_workspaces_agent_or_number_refuses_that_item_only(
    client: httpx.AsyncClient,
    tenant: Tenant,
    agent: dict[str, Any],
    redis_client: redis.Redis,
    settings: Settings,
) -> None:
    other = await create_tenant(client, "other")
    theirs = await other.create_agent()
    await other.register_number("+15105550177")
    before = redis_snapshot(redis_client, f"{settings.redis_prefix}:ws:{other.id}")
    ours = {"to": "+14155552671", "call_agent_id": agent["id"]}
    items = [
        ours,
        ours | {"call_agent_id": theirs["id"]},
        ours | {"from_number": "+15105550177"},
        ours,
    ]
    results = answer_of(await place_batch(tenant, items))["results"]
    assert [result["status"] for result in results] == ["success", "error", "error", "success"]
    assert refusal(results[1])[:2] == (404, "INVALID_AGENT")
    assert refusal(results[2])[:2] == (400, "INVALID_NUMBER_ID")
    assert stored(redis_client, settings, tenant)[0] == 2
    # Nothing of the other workspace changed, and it sees none of these calls.
    assert redis_snapshot(redis_client, f"{settings.redis_prefix}:ws:{other.id}") == before
    assert (await other.request("GET", "/v1/api/calls")).json()["calls"] == []
    for result in (results[0], results[3]):
        seen = await other.request("GET", f"/v1/api/call/{result['callId']}")
        assert seen.status_code == 404


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b"[{}]", {"x-api-key": "od_wrong"}, 401, "UNAUTHORIZED"),
        (b"not json", {"x-api-key": "od_wrong"}, 401, "UNAUTHORIZED"),
        (b"[not json", {}, 422, "VALIDATION_ERROR"),
        (b'{"calls": []}', {}, 422, "VALIDATION_ERROR"),
        (b"[]", {}, 422, "VALIDATION_ERROR"),
        (b"[" + b",".join([b"{}"] * 1001) + b"]", {}, 413, "PAYLOAD_TOO_LARGE"),
        (b'["' + b"x" * (4 * 1024 * 1024) + b'"]', {}, 413, "PAYLOAD_TOO_LARGE"),
        (b"[{}]", {"Idempotency-Key": "has space"}, 422, "VALIDATION_ERROR"),
    ],
)
async def test_a_whole_batch_problem_is_one_error_and_stores_nothing(
    tenant: Tenant,
    agent: dict[str, Any],
    redis_client: redis.Redis,
    settings: Settings,
    content: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    before = redis_snapshot(redis_client, settings.redis_prefix)
    sent = {"content-type": "application/json"} | headers
    response = await tenant.request("POST", BATCH, content=content, headers=sent)
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["status"], body["code"]) == ("error", code)
    assert isinstance(body["details"], dict) and body["message"]
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


async def test_a_retry_with_the_batch_key_answers_the_same_and_places_nothing_twice(
    tenant: Tenant, agent: dict[str, Any], redis_client: redis.Redis, settings: Settings
) -> None:
    items = [
        {"to": "+14155552671", "call_agent_id": agent["id"], "metadata": {"n": n}} for n in range(3)
    ] + [{"to": "12", "call_agent_id": agent["id"]}]
    first = answer_of(await place_batch(tenant, items, key="batch-7"))
    assert (first["accepted"], first["refused"]) == (3, 1)
    # The same batch re-serialized (other key order): the same answer, nothing new.
    reordered = [dict(reversed(item.items())) for item in items]
    for again in (items, reordered):
        assert answer_of(await place_batch(tenant, again, key="batch-7")) == first
    assert stored(redis_client, settings, tenant) == (3, 3)

    changed = await place_batch(tenant, items[:2], key="batch-7")
    assert (changed.status_code, changed.json()["code"]) == (409, "IDEMPOTENCY_CONFLICT")
    # A batch key is not a single call's: the same key on POST /v1/api/call is its own.
    single = await tenant.place_call(**items[0], headers={"Idempotency-Key": "batch-7"})
    assert single.status_code == 200, single.text
    other = answer_of(await place_batch(tenant, items, key="batch-8"))
    assert {r.get("callId") for r in other["results"]}.isdisjoint(
        {r.get("callId") for r in first["results"] if "callId" in r}
    )
    assert stored(redis_client, settings, tenant) == (7, 7)


async def test_the_workspaces_own_country_list_applies_per_item(
    client: httpx.AsyncClient, tenant: Tenant, agent: dict[str, Any]
) -> None:
    path = f"/v1/admin/workspaces/{tenant.id}/allowed-countries"
    assert (await client.put(path, json={"countries": ["GB"]}, headers=ADMIN)).status_code == 200
    uk = {"to": "+442071838750", "call_agent_id": agent["id"]}
    us = uk | {"to": "+14155552671"}
    single = single_refusal(await tenant.place_call(**us))
    results = answer_of(await place_batch(tenant, [uk, us, uk]))["results"]
    assert [result["status"] for result in results] == ["success", "error", "success"]
    assert refusal(results[1]) == single
    assert single[:2] == (403, "NUMBER_NOT_ALLOWED")


async def test_a_balance_running_out_mid_batch_refuses_the_rest_and_never_goes_below_zero(
    client: httpx.AsyncClient,
    tenant: Tenant,
    agent: dict[str, Any],
    redis_client: redis.Redis,
    settings: Settings,
) -> None:
    # 3.5 minutes: three calls reserve their first minute each, the fourth cannot.
    credits = await client.post(
        f"/v1/admin/workspaces/{tenant.id}/credits", json={"minutes": 3.5}, headers=ADMIN
    )
    assert credits.status_code == 200, credits.text
    call = {"to": "+14155552671", "call_agent_id": agent["id"]}
    items = [call, {"to": "12", "call_agent_id": agent["id"]}, call, call, call, call]
    results = answer_of(await place_batch(tenant, items))["results"]
    assert [result["status"] for result in results] == ["success", "error"] + ["success"] * 2 + [
        "error"
    ] * 2
    # What a single accept hears now, from the item that ran out on.
    single = single_refusal(await tenant.place_call(**call))
    assert single[:2] == (402, "INSUFFICIENT_BALANCE")
    assert refusal(results[4]) == refusal(results[5]) == single
    assert results[4]["details"] == {"balanceSeconds": 30, "requiredSeconds": 60}
    balance = int(redis_client.get(f"{settings.redis_prefix}:ws:{tenant.id}:balance") or -1)
    assert balance == 30
    assert stored(redis_client, settings, tenant) == (3, 3)


async def test_1000_calls_in_one_batch_in_three_redis_round_trips(
    tenant: Tenant,
    agent: dict[str, Any],
    redis_client: redis.Redis,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    warm = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
    assert warm.status_code == 200, warm.text
    # The API runs in this process (tests.support.ApiServer): every round trip of its lean
    # client, the only client the accept paths use, is counted where it is sent.
    round_trips: list[int] = []
    send = LeanRedis._roundtrip

    async def counted(self: LeanRedis, data: bytes, size: int) -> list[Any]:
        round_trips.append(size)
        return await send(self, data, size)

    monkeypatch.setattr(LeanRedis, "_roundtrip", counted)
    items = [
        {"to": f"+1415555{n:04d}", "call_agent_id": agent["id"], "metadata": {"n": n}}
        for n in range(1000)
    ]
    commands = {}
    for key in (None, "thousand"):
        round_trips.clear()
        answer = answer_of(await place_batch(tenant, items, key=key, timeout=60))
        commands[key] = list(round_trips)
        assert answer["accepted"] == 1000
        assert len({result["callId"] for result in answer["results"]}) == 1000
    last = await tenant.request("GET", f"/v1/api/call/{answer['results'][999]['callId']}")
    assert last.json()["to"] == "+14155550999"
    # One read (credentials, workspace, numbers, trunks, the agent), one write of the 1,000
    # scripts; with a key, the batch's and items' records are read in the same first round
    # trip, and the batch's answer is kept in a third.
    assert commands == {None: [5, 1000], "thousand": [7, 1000, 1]}
    assert stored(redis_client, settings, tenant) == (2001, 2001)
    over = await place_batch(tenant, [*items, items[0]])
    assert (over.status_code, over.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
