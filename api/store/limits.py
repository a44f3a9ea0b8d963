"""The pacing limits as the API sets and shows them: per-trunk overrides, a workspace's
concurrency, and their current use.

Invariant: the overrides live where the admission scripts read them (`lua/lib/pacing_limits.lua`:
the trunk's `limits` hash, the workspace hash's `max_concurrent_calls`); a field is either a
valid override or absent (absent = the deployment's default), never an empty or negative
value. Current use counts unexpired leases only, as the scripts do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from api.store.base import Store
from api.store.clock import now_ms
from api.store.pacing import PacingDefaults

_RATE = "max_calls_per_second"
_CONCURRENCY = "max_concurrent_calls"


@dataclass(frozen=True, slots=True)
class TrunkOverrides:
    """A trunk's own limits; None: the deployment's default. 0 means unlimited."""

    max_calls_per_second: float | None = None
    max_concurrent_calls: int | None = None


@dataclass(frozen=True, slots=True)
class TrunkUse:
    """A trunk's limits in force (0 = unlimited), whether each is its own, and its use:
    calls holding a slot (any workspace) and the asking workspace's calls waiting."""

    sip_trunk_id: str
    max_calls_per_second: float
    max_concurrent_calls: int
    overridden: TrunkOverrides
    in_use: int
    waiting: int


@dataclass(frozen=True, slots=True)
class WorkspaceUse:
    workspace_id: str
    max_concurrent_calls: int
    overridden: bool
    in_use: int
    trunks: list[TrunkUse]


async def set_trunk_overrides(store: Store, sip_trunk_id: str, limits: TrunkOverrides) -> None:
    """Replaces the trunk's overrides (a None field goes back to the default), atomically."""
    key = store.keys.trunk_limits(sip_trunk_id)
    values = {_RATE: limits.max_calls_per_second, _CONCURRENCY: limits.max_concurrent_calls}
    async with store.redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        for name, value in values.items():
            if value is not None:
                pipe.hset(key, name, str(value))
        await pipe.execute()


async def trunk_overrides(store: Store, sip_trunk_id: str) -> TrunkOverrides:
    raw = await store.redis.hmget(store.keys.trunk_limits(sip_trunk_id), [_RATE, _CONCURRENCY])
    rate, concurrency = cast(list[str | None], raw)
    return TrunkOverrides(
        max_calls_per_second=None if rate is None else float(rate),
        max_concurrent_calls=None if concurrency is None else int(concurrency),
    )


async def set_workspace_concurrency(store: Store, workspace_id: str, limit: int | None) -> bool:
    """Sets (None: removes) the workspace's concurrency; False when there is no workspace."""
    key = store.keys.workspace(workspace_id)
    if not await store.redis.exists(key):
        return False
    if limit is None:
        await store.redis.hdel(key, _CONCURRENCY)
    else:
        await store.redis.hset(key, _CONCURRENCY, str(limit))
    return True


async def workspace_concurrency(store: Store, workspace_id: str) -> int | None:
    # HGETALL rather than HGET: a lookup may advance Redis's incremental rehash of the
    # hash, which changes its DUMP (the tenancy matrix compares DUMPs to prove a read
    # changed nothing); the whole small hash costs the same.
    raw = cast(dict[str, str], await store.redis.hgetall(store.keys.workspace(workspace_id)))
    value = raw.get(_CONCURRENCY)
    return None if value is None else int(value)


async def _trunk_use(
    store: Store, workspace_id: str, sip_trunk_id: str, defaults: PacingDefaults, now: int
) -> TrunkUse:
    own = await trunk_overrides(store, sip_trunk_id)
    in_use = await store.redis.zcount(store.keys.trunk_slots(sip_trunk_id), now, "+inf")
    waiting = await store.redis.zcard(store.keys.trunk_waiting(sip_trunk_id, workspace_id))
    rate = own.max_calls_per_second
    concurrency = own.max_concurrent_calls
    return TrunkUse(
        sip_trunk_id=sip_trunk_id,
        max_calls_per_second=defaults.max_calls_per_second if rate is None else rate,
        max_concurrent_calls=(
            defaults.trunk_max_concurrent_calls if concurrency is None else concurrency
        ),
        overridden=own,
        in_use=int(in_use),
        waiting=int(waiting),
    )


async def workspace_use(store: Store, workspace_id: str, trunk_ids: list[str]) -> WorkspaceUse:
    """The workspace's limit and use, and those of `trunk_ids` (its trunks)."""
    defaults = PacingDefaults.from_settings(store.settings)
    now = now_ms()
    own = await workspace_concurrency(store, workspace_id)
    in_use = await store.redis.zcount(store.keys.workspace_slots(workspace_id), now, "+inf")
    trunks = [await _trunk_use(store, workspace_id, t, defaults, now) for t in trunk_ids]
    return WorkspaceUse(
        workspace_id=workspace_id,
        max_concurrent_calls=defaults.workspace_max_concurrent_calls if own is None else own,
        overridden=own is not None,
        in_use=int(in_use),
        trunks=trunks,
    )
