"""`GET /v1/api/calls` with a filter examines a bounded part of the index per request and
hands back a cursor to go on (issue 10, item 14)."""

from __future__ import annotations

from typing import Any

import redis

from api.settings import Settings
from api.store.calls import MAX_SCAN_PER_PAGE
from api.store.keys import Keys
from tests.conftest import Tenant
from tests.records import ACCEPTED_CALL

CALLS = MAX_SCAN_PER_PAGE + 150


def _seed(redis_client: redis.Redis, settings: Settings, workspace_id: str) -> str:
    """CALLS calls in the workspace's index; only the oldest is `completed`."""
    keys = Keys(settings.redis_prefix)
    pipe = redis_client.pipeline(transaction=False)
    for n in range(CALLS):
        call_id = f"call{n:05d}"
        pipe.hset(
            keys.call(call_id),
            mapping=ACCEPTED_CALL
            | {
                "id": call_id,
                "workspace_id": workspace_id,
                "status": "completed" if n == 0 else "failed",
                "to": "+14155550123",
                "agent_id": "ag_x",
                "room_name": f"room-{call_id}",
                "created_at": str(1_700_000_000_000 + n),
            },
        )
        pipe.zadd(keys.calls(workspace_id), {call_id: (1_700_000_000_000 + n) * 1000})
    pipe.execute()
    return "call00000"


async def _page(tenant: Tenant, **params: Any) -> dict[str, Any]:
    response = await tenant.request("GET", "/v1/api/calls", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_filtered_list_is_bounded_per_request_and_continues_by_cursor(
    tenant: Tenant, settings: Settings, redis_client: redis.Redis
) -> None:
    oldest = _seed(redis_client, settings, tenant.id)
    first = await _page(tenant, status="completed", limit=10)
    # The match is past the first MAX_SCAN_PER_PAGE entries: an empty page, with a cursor.
    assert first["calls"] == [] and first["nextCursor"] is not None
    second = await _page(tenant, status="completed", limit=10, cursor=first["nextCursor"])
    assert [c["callId"] for c in second["calls"]] == [oldest]
    assert second["nextCursor"] is None

    # Unfiltered pages walk every call exactly once.
    seen: list[str] = []
    cursor = None
    while True:
        page = await _page(tenant, limit=200, **({"cursor": cursor} if cursor else {}))
        seen += [c["callId"] for c in page["calls"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == CALLS
