"""The minute balance holds on every vendor-compatible route: a workspace whose balance
covers one minute places one call through them, and each route refuses the next with its
vendor's 402, storing nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis

from api.settings import Settings
from tests.compat import CALLER, CompatTenant, compat_tenant
from tests.support import ADMIN_TOKEN, redis_snapshot


@pytest.fixture
async def ws(client: httpx.AsyncClient) -> CompatTenant:
    ws = await compat_tenant(client)
    credited = await client.post(
        f"/v1/admin/workspaces/{ws.tenant.id}/credits",
        json={"minutes": 1},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert credited.status_code == 200, credited.text
    return ws


def requests(ws: CompatTenant) -> dict[str, tuple[str, dict[str, Any], dict[str, Any]]]:
    """Each route's request: path, body (JSON), and the 402 body it must answer."""
    iqra = f"/api/v1/business/{ws.alias}/call/initiate"
    return {
        "voicegenie": (
            "/initiateCall",
            {"phone_number": "+14155552671", "agent_id": ws.agent_id},
            {"success": False, "message": "Insufficient balance"},
        ),
        "iqra": (
            iqra,
            {"RecipientNumber": "+14155552671", "NumberId": CALLER, "AgentId": ws.agent_id},
            {"Success": False, "Code": "InitiateCall:INSUFFICIENT_BALANCE", "Data": None},
        ),
        "contactship": (
            "/v1/calls/single-phone-call",
            {
                "from_number": CALLER,
                "to_number": "+14155552671",
                "full_name": "Ada",
                "agent_id": ws.agent_id,
            },
            {"statusCode": 402, "error": "Payment Required"},
        ),
    }


@pytest.mark.parametrize("vendor", ["voicegenie", "iqra", "contactship"])
async def test_the_balance_covers_one_call_and_the_next_is_the_vendors_402(
    client: httpx.AsyncClient,
    ws: CompatTenant,
    settings: Settings,
    redis_client: redis.Redis,
    vendor: str,
) -> None:
    path, body, refusal = requests(ws)[vendor]
    headers = {"x-api-key": ws.key}
    first = await client.post(path, json=body, headers=headers)
    assert first.status_code == 200, first.text
    before = redis_snapshot(redis_client, settings.redis_prefix)
    second = await client.post(path, json=body, headers=headers)
    assert second.status_code == 402, second.text
    answer = second.json()
    assert {key: answer[key] for key in refusal} == refusal
    assert redis_snapshot(redis_client, settings.redis_prefix) == before
    shown = await client.get(
        f"/v1/admin/workspaces/{ws.tenant.id}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert shown.json()["balance"]["seconds"] == 0
