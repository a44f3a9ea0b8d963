"""Call bodies stored as sent (issue 10, item 16): NaN and Infinity, which JSON does not have
but the parser takes, are refused with the field named instead of being stored as null.
Real API, real Redis."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from api.settings import Settings
from tests.conftest import Tenant
from tests.support import redis_snapshot


@pytest.fixture
async def agent_id(tenant: Tenant, lk: Any) -> str:
    await tenant.register_number()
    return str((await tenant.create_agent())["id"])


@pytest.mark.parametrize(
    ("section", "value", "field"),
    [
        ("dynamic_variables", '{"balance": NaN}', "dynamic_variables.balance"),
        ("dynamic_variables", '{"ok": 1.5, "due": Infinity}', "dynamic_variables.due"),
        ("dynamic_variables", '{"due": -Infinity}', "dynamic_variables.due"),
        ("metadata", '{"order": {"items": [1, NaN]}}', "metadata"),
    ],
)
async def test_non_finite_numbers_are_refused(
    section: str,
    value: str,
    field: str,
    tenant: Tenant,
    agent_id: str,
    redis_client: redis.Redis,
    settings: Settings,
) -> None:
    before = redis_snapshot(redis_client, settings.redis_prefix)
    body = f'{{"to": "+14155550123", "call_agent_id": "{agent_id}", "{section}": {value}}}'
    response = await tenant.request(
        "POST", "/v1/api/call", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"]["errors"][0]["field"] == field
    assert "NaN and Infinity" in error["message"]
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


async def test_finite_numbers_are_stored_as_sent(tenant: Tenant, agent_id: str) -> None:
    variables = {"balance": 12.5, "count": 3, "big": 1e300}
    placed = await tenant.place_call(
        to="+14155550123", call_agent_id=agent_id, dynamic_variables=variables
    )
    assert placed.status_code == 200, placed.text
    call = (await tenant.request("GET", f"/v1/api/call/{placed.json()['callId']}")).json()
    assert call["dynamicVariables"] == variables
