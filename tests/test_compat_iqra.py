"""Iqra's `call/initiate` and call status against a live API: the vendor's multipart example
becomes a dial with its variables, metadata and caller number; `ScheduledTime` a scheduled
call; every refusal is `InitiateCall:<CODE>`; a body over 10 MB is refused unread."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import httpx
import pytest
import redis

from agent_runtime.contract import CallStatus
from api.routes.compat.iqra import FORM_BODY_LIMIT, STATUSES
from api.settings import Settings
from tests.compat import CALLER, CompatTenant, compat_tenant, dial_of, disable
from tests.support import ApiServer, WorkerProcess, redis_snapshot


@pytest.fixture
async def ws(client: httpx.AsyncClient) -> CompatTenant:
    return await compat_tenant(client)


def initiate_path(ws: CompatTenant, business: int | str | None = None) -> str:
    return f"/api/v1/business/{ws.alias if business is None else business}/call/initiate"


def form(ws: CompatTenant, **changes: str) -> dict[str, str]:
    """The vendor's documented multipart example (curl -F ...)."""
    fields = {
        "RecipientNumber": "+14155552671",
        "NumberId": "num_" + CALLER.removeprefix("+"),
        "AgentId": ws.agent_id,
        "CampaignId": "spring-reminders",
        "DynamicVariables[full_name]": "Ada Lovelace",
        "DynamicVariables[topic]": "the dentist",
        "Metadata[crm_id]": "lead-42",
    }
    return fields | changes


@pytest.mark.dial_immediately
async def test_the_vendor_example_is_dialed_with_variables_metadata_and_caller(
    client: httpx.AsyncClient, ws: CompatTenant, lk: Any, worker: WorkerProcess
) -> None:
    response = await client.post(
        initiate_path(ws),
        files={name: (None, value) for name, value in form(ws).items()},
        headers={"Authorization": f"Bearer {ws.key}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.keys() == {"Success", "Data"} and body["Success"] is True
    (call_id,) = body["Data"]

    view = (await ws.tenant.request("GET", f"/v1/api/call/{call_id}")).json()
    contract, dial = await dial_of(lk, view["roomName"])
    assert contract.dynamic_variables == {"full_name": "Ada Lovelace", "topic": "the dentist"}
    assert contract.metadata == {"crm_id": "lead-42"}
    assert (dial.sip_call_to, dial.sip_number) == ("+14155552671", CALLER)
    assert view["campaignId"] == "spring-reminders"

    status = await client.get(
        f"/api/v1/business/{ws.alias}/call/{call_id}", headers={"x-api-key": ws.key}
    )
    assert status.status_code == 200, status.text
    data = status.json()["Data"]
    assert data["Status"] in ("Processing", "In Progress")
    assert (data["Id"], data["RecipientNumber"], data["AgentId"]) == (
        call_id,
        "+14155552671",
        ws.agent_id,
    )
    assert (data["CampaignId"], data["EndedAt"], data["EndReason"]) == (
        "spring-reminders",
        None,
        None,
    )


async def test_a_json_body_with_objects_is_the_same_call(
    client: httpx.AsyncClient, ws: CompatTenant
) -> None:
    body = {
        "RecipientNumber": "+14155552671",
        "NumberId": CALLER,  # the E.164 number itself
        "AgentId": ws.agent_id,
        "DynamicVariables": {"full_name": "Ada"},
        "Metadata": {"crm_id": "7"},
    }
    response = await client.post(initiate_path(ws), json=body, headers={"x-api-key": ws.key})
    assert response.status_code == 200, response.text
    (call_id,) = response.json()["Data"]
    view = (await ws.tenant.request("GET", f"/v1/api/call/{call_id}")).json()
    assert (view["dynamicVariables"], view["metadata"], view["from"]) == (
        {"full_name": "Ada"},
        {"crm_id": "7"},
        CALLER,
    )


async def test_scheduled_time_makes_a_scheduled_call(
    client: httpx.AsyncClient, ws: CompatTenant
) -> None:
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    # without an offset, as .NET clients often send it: read as UTC
    naive = at.replace(tzinfo=None).isoformat()
    response = await client.post(
        initiate_path(ws), data=form(ws, ScheduledTime=naive), headers={"x-api-key": ws.key}
    )
    assert response.status_code == 200, response.text
    (call_id,) = response.json()["Data"]
    view = (await ws.tenant.request("GET", f"/v1/api/call/{call_id}")).json()
    assert view["status"] == "scheduled"
    assert datetime.fromisoformat(view["scheduledAt"].replace("Z", "+00:00")) == at
    status = await client.get(
        f"/api/v1/business/{ws.alias}/call/{call_id}", headers={"x-api-key": ws.key}
    )
    assert status.json()["Data"]["Status"] == "Queued"


def error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body.keys() == {"Success", "Code", "Message", "Data"}, body
    assert body["Success"] is False and body["Data"] is None and body["Message"]
    return response.status_code, body["Code"]


async def test_a_key_of_another_business_is_permission_denied(
    client: httpx.AsyncClient, ws: CompatTenant
) -> None:
    other = await compat_tenant(client, "other", "+15105550101")
    for business in (other.alias, 999_999, "abc"):
        response = await client.post(
            initiate_path(ws, business), data=form(ws), headers={"x-api-key": ws.key}
        )
        assert error(response) == (403, "InitiateCall:PERMISSION_DENIED"), business
    status = await client.get(
        f"/api/v1/business/{other.alias}/call/anything", headers={"x-api-key": ws.key}
    )
    assert error(status) == (403, "GetCall:PERMISSION_DENIED")


async def test_another_business_call_is_not_found(
    client: httpx.AsyncClient, ws: CompatTenant
) -> None:
    other = await compat_tenant(client, "other", "+15105550101")
    placed = await client.post(
        initiate_path(other),
        data=form(other, NumberId="+15105550101"),
        headers={"x-api-key": other.key},
    )
    (call_id,) = placed.json()["Data"]
    for call in (call_id, "not an id!"):
        response = await client.get(
            f"/api/v1/business/{ws.alias}/call/{call}", headers={"x-api-key": ws.key}
        )
        assert error(response) == (404, "GetCall:NOT_FOUND")


CODES = [
    ({"RecipientNumber": "12"}, (400, "InitiateCall:INVALID_NUMBER")),
    ({"RecipientNumber": ""}, (422, "InitiateCall:INVALID_NUMBER")),
    ({"AgentId": "agent_nobody"}, (404, "InitiateCall:INVALID_AGENT")),
    ({"AgentId": ""}, (422, "InitiateCall:INVALID_AGENT")),
    ({"NumberId": "num_19995550100"}, (400, "InitiateCall:INVALID_NUMBER_ID")),
    ({"NumberId": "not-a-number"}, (400, "InitiateCall:INVALID_NUMBER_ID")),
    ({"RecipientNumber": "+19005550100"}, (403, "InitiateCall:PERMISSION_DENIED")),
    ({"ScheduledTime": "next tuesday"}, (422, "InitiateCall:EXCEPTION")),
    ({"CampaignId": "has spaces"}, (422, "InitiateCall:EXCEPTION")),
]


@pytest.mark.parametrize(("change", "expected"), CODES)
async def test_each_refusal_has_its_iqra_code_and_stores_nothing(
    client: httpx.AsyncClient,
    ws: CompatTenant,
    settings: Settings,
    redis_client: redis.Redis,
    change: dict[str, str],
    expected: tuple[int, str],
) -> None:
    before = redis_snapshot(redis_client, settings.redis_prefix)
    response = await client.post(
        initiate_path(ws), data=form(ws, **change), headers={"x-api-key": ws.key}
    )
    assert error(response) == expected
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


async def test_credentials_refusals(client: httpx.AsyncClient, ws: CompatTenant) -> None:
    unknown = await client.post(initiate_path(ws), data=form(ws), headers={"x-api-key": "nope"})
    none = await client.post(initiate_path(ws), data=form(ws))
    assert error(unknown) == error(none) == (401, "InitiateCall:PERMISSION_DENIED")
    by_hook = await client.post(f"{ws.hook_path}{initiate_path(ws)}", data=form(ws))
    assert by_hook.status_code == 200, by_hook.text
    await disable(client, ws.tenant.id)
    disabled = await client.post(initiate_path(ws), data=form(ws), headers={"x-api-key": ws.key})
    assert error(disabled) == (403, "InitiateCall:BUSINESS_DISABLED")
    by_hook = await client.post(f"{ws.hook_path}{initiate_path(ws)}", data=form(ws))
    assert error(by_hook) == (403, "InitiateCall:BUSINESS_DISABLED")


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("multipart/form-data; boundary=x", b"--x\r\nnot a part"),
        ("multipart/form-data", b"no boundary"),
        ("text/plain", b"RecipientNumber=+14155552671"),
        ("application/json", b"[1]"),
    ],
)
async def test_a_body_that_does_not_parse_is_refused(
    client: httpx.AsyncClient, ws: CompatTenant, content_type: str, raw: bytes
) -> None:
    response = await client.post(
        initiate_path(ws), content=raw, headers={"x-api-key": ws.key, "content-type": content_type}
    )
    status, code = error(response)
    assert status in (400, 415, 422) and code.startswith("InitiateCall:")


async def test_a_map_sent_as_a_plain_field_too_is_refused(
    client: httpx.AsyncClient, ws: CompatTenant
) -> None:
    for pairs in (
        [("DynamicVariables", "x"), ("DynamicVariables[a]", "b")],
        [("Metadata[a]", "b"), ("Metadata", "x")],
    ):
        fields = list(form(ws).items()) + pairs
        response = await client.post(
            initiate_path(ws),
            content="&".join(f"{k}={v}" for k, v in fields).replace("+", "%2B"),
            headers={"x-api-key": ws.key, "content-type": "application/x-www-form-urlencoded"},
        )
        assert error(response) == (422, "InitiateCall:EXCEPTION"), pairs


@pytest.mark.parametrize("business", ["%C2%B2", "9" * 5000, "0", "-1", "1.0", "%201"])
async def test_a_business_id_that_is_no_alias_is_permission_denied(
    client: httpx.AsyncClient, ws: CompatTenant, business: str
) -> None:
    response = await client.post(
        f"/api/v1/business/{business}/call/initiate", data=form(ws), headers={"x-api-key": ws.key}
    )
    assert error(response) == (403, "InitiateCall:PERMISSION_DENIED")


async def test_a_file_part_is_refused(client: httpx.AsyncClient, ws: CompatTenant) -> None:
    response = await client.post(
        initiate_path(ws),
        data=form(ws),
        files={"RecipientNumber": ("numbers.csv", b"+14155552671", "text/csv")},
        headers={"x-api-key": ws.key},
    )
    assert error(response) == (400, "InitiateCall:EXCEPTION")


async def _raw_exchange(server: ApiServer, head: bytes, body_chunks: int) -> tuple[bytes, int]:
    """Sends `head`, then up to `body_chunks` 1 MB chunks (chunked encoding when the head
    says so) without ever finishing the body; returns the answer and the chunks sent."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head)
    sent = 0
    chunked = b"chunked" in head.lower()
    chunk = b"a" * (1 << 20)
    try:
        while sent < body_chunks and not reader.at_eof():
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await writer.drain()
            sent += 1
            try:
                answer = await asyncio.wait_for(reader.read(65536), timeout=0.05)
            except TimeoutError:
                continue
            if answer:
                return answer, sent
        answer = await asyncio.wait_for(reader.read(65536), timeout=10)
        return answer, sent
    finally:
        writer.close()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_over_10_mb_is_refused_before_it_is_read_whole(
    api_server: ApiServer, ws: CompatTenant, framing: str
) -> None:
    size = FORM_BODY_LIMIT + (1 << 20)
    length = (
        f"Content-Length: {size}" if framing == "content-length" else "Transfer-Encoding: chunked"
    )
    head = (
        f"POST {initiate_path(ws)} HTTP/1.1\r\nHost: x\r\nx-api-key: {ws.key}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\n{length}\r\n\r\n"
    ).encode()
    # Content-Length: nothing of the body is needed; chunked: at most the limit's worth
    answer, sent = await _raw_exchange(api_server, head, size >> 20 if framing == "chunked" else 0)
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line, answer[:200]
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["Code"] == "InitiateCall:EXCEPTION"
    assert sent <= (FORM_BODY_LIMIT >> 20) + 1


def test_every_outdial_status_has_an_iqra_status() -> None:
    assert set(STATUSES) == set(get_args(CallStatus))
    assert set(STATUSES.values()) == {"Queued", "Processing", "In Progress", "Completed", "Failed"}
