"""Pacing limits: the operator sets a trunk's own limits (any trunk) and a workspace's
concurrency; a workspace reads its own and its trunks' limits and current use.

Who may set what: a trunk's rate and concurrency are the carrier's contract, so the operator
sets them (`PUT /v1/admin/trunks/{id}/limits`); a workspace sets them only for a trunk
Outdial created for one of its numbers, in that number's trunk spec. A workspace's own
concurrency is the operator's (`PUT /v1/admin/workspaces/{id}/limits`).
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import AdminDep, StoreDep, WorkspaceDep
from api.errors import not_found
from api.openapi import ADMIN_AUTH, BODY, NOT_FOUND, STORAGE, WORKSPACE_AUTH, error_responses
from api.schemas.limits import (
    LimitsView,
    TrunkLimitsOut,
    TrunkLimitsUpdate,
    WorkspaceLimitsOut,
    WorkspaceLimitsUpdate,
)
from api.store import limits
from api.store.numbers import assigned_trunks, list_numbers
from api.store.pacing import PacingDefaults

router = APIRouter(
    prefix="/v1/api/limits", tags=["limits"], responses=error_responses(WORKSPACE_AUTH, STORAGE)
)
admin_router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[AdminDep],
    responses=error_responses(ADMIN_AUTH, STORAGE),
)


@router.get("")
async def get_limits(workspace: WorkspaceDep, store: StoreDep) -> LimitsView:
    """The trunks are those the operator assigned and those of the workspace's numbers."""
    trunks = set(await assigned_trunks(store, workspace.id))
    trunks.update(n.sip_trunk_id for n in await list_numbers(store, workspace.id))
    return LimitsView.of(await limits.workspace_use(store, workspace.id, sorted(trunks)))


@admin_router.put("/trunks/{sip_trunk_id}/limits", responses=error_responses(NOT_FOUND, BODY))
async def set_trunk_limits(
    sip_trunk_id: str, body: TrunkLimitsUpdate, store: StoreDep
) -> TrunkLimitsOut:
    await limits.set_trunk_overrides(store, sip_trunk_id, body.overrides())
    defaults = PacingDefaults.from_settings(store.settings)
    own = body.overrides()
    rate = own.max_calls_per_second
    concurrency = own.max_concurrent_calls
    return TrunkLimitsOut.of(
        sip_trunk_id,
        defaults.max_calls_per_second if rate is None else rate,
        defaults.trunk_max_concurrent_calls if concurrency is None else concurrency,
        own,
    )


@admin_router.put("/workspaces/{workspace_id}/limits", responses=error_responses(NOT_FOUND, BODY))
async def set_workspace_limits(
    workspace_id: str, body: WorkspaceLimitsUpdate, store: StoreDep
) -> WorkspaceLimitsOut:
    if not await limits.set_workspace_concurrency(store, workspace_id, body.max_concurrent_calls):
        raise not_found("workspace", workspace_id)
    use = await limits.workspace_use(store, workspace_id, [])
    return WorkspaceLimitsOut(
        workspace_id=workspace_id,
        max_concurrent_calls=use.max_concurrent_calls,
        max_concurrent_calls_own=use.overridden,
        in_use=use.in_use,
    )
