"""What the tests of the vendor-compatible routes share: a workspace as those vendors' clients
know it (its key alone, its business alias, its integration base URL), and the dial a call
became at the LiveKit test server."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from agent_runtime.contract import DispatchMetadata
from tests.conftest import Tenant
from tests.support import ADMIN_TOKEN

CALLER = "+15105550100"


@dataclass
class CompatTenant:
    tenant: Tenant
    alias: int
    # the path of the integration base URL: `/hooks/<token>`
    hook_path: str
    agent_id: str

    @property
    def key(self) -> str:
        return self.tenant.api_key


async def compat_tenant(
    http: httpx.AsyncClient, name: str = "migrating", caller: str = CALLER
) -> CompatTenant:
    """A workspace with an agent and a registered caller number (one workspace per number)."""
    response = await http.post(
        "/v1/admin/workspaces",
        json={"name": name},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    tenant = Tenant(http, created)
    agent = await tenant.create_agent(instructions="Remind {{full_name}} of {{topic|it}}.")
    await tenant.register_number(caller)
    hook_path = urlsplit(created["integrationBaseUrl"]).path
    return CompatTenant(tenant, created["alias"], hook_path, agent["id"])


async def disable(http: httpx.AsyncClient, workspace_id: str) -> None:
    response = await http.patch(
        f"/v1/admin/workspaces/{workspace_id}",
        json={"disabled": True},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 200, response.text


async def dial_of(lk: Any, room_name: str) -> tuple[DispatchMetadata, Any]:
    """The dispatch contract the room was created with, and the dial into it."""
    await lk.wait_for_async("SIP", "CreateSIPParticipant", timeout=30)
    (room,) = [r for r in lk.requests("RoomService", "CreateRoom") if r.request.name == room_name]
    (dial,) = [
        r for r in lk.requests("SIP", "CreateSIPParticipant") if r.request.room_name == room_name
    ]
    contract = DispatchMetadata.from_json(room.request.agents[0].metadata)
    assert json.loads(room.request.metadata)["call_id"] == contract.call_id
    return contract, dial.request
