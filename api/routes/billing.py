"""Minute balances and usage: the operator's credits and everyone's usage, a workspace's own
usage.

Invariant: no route here reads a balance in one step and writes it in another: credits
are one INCRBY, a removal one transaction with the balance's generation, and a call's
minutes only change in the store's scripts (`api.store.billing`,
`api/store/lua/lib/reservation.lua`). The reports only read, and read a bounded number of
days and workspaces (`api.services.usage`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AdminDep, StoreDep, WorkspaceDep
from api.errors import not_found
from api.openapi import ADMIN_AUTH, BODY, NOT_FOUND, STORAGE, WORKSPACE_AUTH, error_responses
from api.schemas.billing import AllUsage, Balance, CreditsAdd, UsageReport, WorkspaceBalance
from api.services.usage import (
    MAX_WORKSPACE_DAYS,
    check_all_usage,
    day_range,
    usage_report,
    workspace_usage,
)
from api.store import billing
from api.store.workspaces import list_workspaces

_RANGE = {422: "INVALID_DATE_RANGE: a date that is not YYYY-MM-DD, from after to, over 366 days"}
_ALL_RANGE = {
    422: "INVALID_DATE_RANGE: as GET /v1/api/usage, or workspaces x days over "
    f"{MAX_WORKSPACE_DAYS:,} (details.maxDays: the longest range for this many workspaces)"
}
From = Annotated[
    str | None, Query(alias="from", description="First day, YYYY-MM-DD (UTC); default: to - 29")
]
To = Annotated[str | None, Query(description="Last day, YYYY-MM-DD (UTC); default: today")]

router = APIRouter(
    prefix="/v1/api/usage", tags=["usage"], responses=error_responses(WORKSPACE_AUTH, STORAGE)
)
admin_router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[AdminDep],
    responses=error_responses(ADMIN_AUTH, STORAGE),
)


@router.get("", responses=error_responses(_RANGE))
async def get_usage(
    workspace: WorkspaceDep, store: StoreDep, from_: From = None, to: To = None
) -> UsageReport:
    """The workspace's calls and billed minutes by the UTC day they ended, and by outcome."""
    days = day_range(from_, to)
    found = await billing.usage_by_day(store, [workspace.id], days.first_day, days.last_day)
    return usage_report(days, found[workspace.id])


@admin_router.get("/usage", responses=error_responses(_ALL_RANGE))
async def get_all_usage(store: StoreDep, from_: From = None, to: To = None) -> AllUsage:
    """Every workspace's usage (as `GET /v1/api/usage`), oldest workspace first. One
    request reads at most 100,000 workspace-days (`MAX_WORKSPACE_DAYS`): with many
    workspaces, ask for fewer days at a time."""
    days = day_range(from_, to)
    ids = [workspace.id for workspace in await list_workspaces(store)]
    check_all_usage(len(ids), days)
    found = await billing.usage_by_day(store, ids, days.first_day, days.last_day)
    return AllUsage(
        from_=days.first.isoformat(),
        to=days.last.isoformat(),
        workspaces=[workspace_usage(ws, days, found[ws]) for ws in ids],
    )


@admin_router.post("/workspaces/{workspace_id}/credits", responses=error_responses(NOT_FOUND, BODY))
async def add_credits(workspace_id: str, body: CreditsAdd, store: StoreDep) -> WorkspaceBalance:
    """Adds minutes to the workspace's balance; the first credits make it metered (its
    calls need a minute to start, `INSUFFICIENT_BALANCE` otherwise)."""
    seconds = await billing.add_credits(store, workspace_id, body.seconds)
    if seconds is None:
        raise not_found("workspace", workspace_id)
    return WorkspaceBalance(workspace_id=workspace_id, balance=Balance.of(seconds))


@admin_router.delete("/workspaces/{workspace_id}/credits", responses=error_responses(NOT_FOUND))
async def remove_credits(workspace_id: str, store: StoreDep) -> WorkspaceBalance:
    """Makes the workspace unlimited again (its balance is dropped, `balance: null`). Its
    calls in progress are unmetered from now on: what they reserved is not given back,
    even to credits added later."""
    if not await billing.remove_balance(store, workspace_id):
        raise not_found("workspace", workspace_id)
    return WorkspaceBalance(workspace_id=workspace_id, balance=None)
