"""Caller ids of a workspace: E.164 number -> LiveKit outbound trunk, one of them default."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from api.store.base import Store


@dataclass(frozen=True, slots=True)
class CallerNumber:
    number: str
    sip_trunk_id: str
    default: bool
    trunk_managed: bool
    created_at: int


def _decode(raw: str) -> CallerNumber:
    return CallerNumber(**json.loads(raw))


async def save_number(
    store: Store,
    workspace_id: str,
    number: str,
    sip_trunk_id: str,
    *,
    default: bool,
    trunk_managed: bool,
) -> CallerNumber:
    record = CallerNumber(number, sip_trunk_id, default, trunk_managed, int(time.time() * 1000))
    raw = await store.save_number_script(
        keys=[store.keys.numbers(workspace_id)],
        args=[number, json.dumps(asdict(record)), "1" if default else "0"],
    )
    return _decode(raw)


async def list_numbers(store: Store, workspace_id: str) -> list[CallerNumber]:
    raws = await store.redis.hvals(store.keys.numbers(workspace_id))
    return sorted((_decode(raw) for raw in raws), key=lambda n: n.created_at)


async def get_number(store: Store, workspace_id: str, number: str) -> CallerNumber | None:
    raw = await store.redis.hget(store.keys.numbers(workspace_id), number)
    return _decode(raw) if raw else None


async def delete_number(store: Store, workspace_id: str, number: str) -> CallerNumber | None:
    key = store.keys.numbers(workspace_id)
    raw = await store.redis.hget(key, number)
    if raw is None:
        return None
    await store.redis.hdel(key, number)
    return _decode(raw)


def pick_caller(numbers: dict[str, str], wanted: str | None) -> CallerNumber | None:
    """The number a call uses: the requested one, else the workspace default."""
    if wanted is not None:
        raw = numbers.get(wanted)
        return _decode(raw) if raw else None
    for raw in numbers.values():
        candidate = _decode(raw)
        if candidate.default:
            return candidate
    return None
