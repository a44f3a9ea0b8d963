"""Trunks and caller ids have an owner (issue 10, item 2), over real HTTP and real Redis.

A raw trunk id is usable only once the operator assigned it to the workspace, a number is
held by one workspace at a time, and the accept path checks the trunk again at every call.
"""

from __future__ import annotations

from typing import Any

import httpx
import redis

from api.settings import Settings
from tests.conftest import Tenant, create_tenant
from tests.support import ADMIN_TOKEN, redis_snapshot

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["status"], body["code"]) == ("error", code)
    assert body["message"]
    return body


async def test_another_workspaces_trunk_cannot_be_registered(
    tenant: Tenant, client: httpx.AsyncClient, redis_client: redis.Redis, settings: Settings
) -> None:
    victim = await tenant.register_number("+15105550100")
    thief = await create_tenant(client, "thief")
    before = redis_snapshot(redis_client, settings.redis_prefix)
    stolen = await thief.request(
        "POST",
        "/v1/api/numbers",
        json={"number": "+15105550199", "sip_trunk_id": victim["sipTrunkId"]},
    )
    body = _error(stolen, 403, "TRUNK_NOT_ASSIGNED")
    assert body["details"] == {"sipTrunkId": victim["sipTrunkId"]}
    assert redis_snapshot(redis_client, settings.redis_prefix) == before
    # Nor may the operator hand a trunk Outdial created for one workspace's number to another.
    handed = await client.post(
        f"/v1/admin/workspaces/{thief.id}/trunks",
        json={"sip_trunk_id": victim["sipTrunkId"]},
        headers=ADMIN,
    )
    _error(handed, 409, "TRUNK_OWNED")


async def test_a_number_belongs_to_one_workspace(
    tenant: Tenant, client: httpx.AsyncClient, lk: Any
) -> None:
    await tenant.register_number("+15105550100")
    other = await create_tenant(client, "other")
    taken = await other.request(
        "POST",
        "/v1/api/numbers",
        json={"number": "+1 510 555 0100", "trunk": {"address": "sip.x.net"}},
    )
    _error(taken, 409, "NUMBER_TAKEN")
    assert lk.count("SIP", "CreateSIPOutboundTrunk") == 1  # none created for the refusal
    await other.assign_trunk("ST_other")
    raw = await other.request(
        "POST", "/v1/api/numbers", json={"number": "+15105550100", "sip_trunk_id": "ST_other"}
    )
    _error(raw, 409, "NUMBER_TAKEN")
    # Re-registering in the holding workspace is an update (the trunk Outdial created for the
    # number before goes); deleting releases the number.
    replaced = await tenant.register_number("+15105550100")
    assert lk.count("SIP", "DeleteSIPTrunk") == 1
    assert replaced["sipTrunkId"] in lk.trunks
    assert (await tenant.request("DELETE", "/v1/api/numbers/+15105550100")).status_code == 204
    freed = await other.register_number("+15105550100", sip_trunk_id="ST_other")
    assert freed["sipTrunkId"] == "ST_other"


async def test_the_call_rechecks_the_trunk_at_accept(
    tenant: Tenant, client: httpx.AsyncClient, redis_client: redis.Redis, settings: Settings
) -> None:
    agent = await tenant.create_agent()
    await tenant.register_number("+15105550100", sip_trunk_id="ST_carrier")
    placed = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
    assert placed.status_code == 200, placed.text

    withdrawn = await client.delete(
        f"/v1/admin/workspaces/{tenant.id}/trunks/ST_carrier", headers=ADMIN
    )
    assert withdrawn.status_code == 204
    before = redis_snapshot(redis_client, settings.redis_prefix)
    refused = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
    _error(refused, 403, "TRUNK_NOT_ASSIGNED")
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


async def test_admin_trunk_routes(tenant: Tenant, client: httpx.AsyncClient) -> None:
    path = f"/v1/admin/workspaces/{tenant.id}/trunks"
    assigned = await client.post(path, json={"sip_trunk_id": "ST_b"}, headers=ADMIN)
    assert assigned.status_code == 201, assigned.text
    await client.post(path, json={"sip_trunk_id": "ST_a"}, headers=ADMIN)
    listed = await client.get(path, headers=ADMIN)
    assert listed.json() == {"workspaceId": tenant.id, "sipTrunkIds": ["ST_a", "ST_b"]}

    _error(await client.post(path, json={"sip_trunk_id": "ST_a"}), 401, "UNAUTHORIZED")
    _error(
        await client.post(path, json={"sip_trunk_id": "nope"}, headers=ADMIN),
        422,
        "VALIDATION_ERROR",
    )
    _error(
        await client.post(
            "/v1/admin/workspaces/ws_missing/trunks", json={"sip_trunk_id": "ST_a"}, headers=ADMIN
        ),
        404,
        "NOT_FOUND",
    )
    assert (await client.delete(f"{path}/ST_a", headers=ADMIN)).status_code == 204
    _error(await client.delete(f"{path}/ST_a", headers=ADMIN), 404, "NOT_FOUND")
    _error(await client.delete(f"{path}/not%20a%20trunk", headers=ADMIN), 404, "NOT_FOUND")
    assert (await client.get(path, headers=ADMIN)).json()["sipTrunkIds"] == ["ST_b"]
