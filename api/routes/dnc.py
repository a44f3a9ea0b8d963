"""The calling workspace's do-not-call list (the rules: `api.services.dnc`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import StoreDep, WorkspaceDep
from api.openapi import BODY, NOT_FOUND, STORAGE, WORKSPACE_AUTH, error_responses
from api.schemas.dnc import E164_PATTERN, DncAdd, DncAdded, DncEntryOut, DncPage
from api.services import dnc
from api.store.dnc import count_dnc, list_dnc

router = APIRouter(
    prefix="/v1/api/dnc", tags=["do not call"], responses=error_responses(WORKSPACE_AUTH, STORAGE)
)
_PATH_NUMBER = {400: "INVALID_NUMBER: not a phone number"}


@router.post(
    "",
    responses=error_responses(
        BODY,
        {409: "DNC_LIST_FULL: the new numbers would pass the list's limit; none was added"},
    ),
)
async def add_dnc_numbers(body: DncAdd, workspace: WorkspaceDep, store: StoreDep) -> DncAdded:
    """Add up to 10,000 numbers (source `api`); an invalid one is reported, not added."""
    return await dnc.add_numbers_to_dnc(store, workspace.id, body)


@router.get(
    "",
    responses=error_responses({422: "VALIDATION_ERROR: a query parameter is invalid"}),
)
async def list_dnc_numbers(
    workspace: WorkspaceDep,
    store: StoreDep,
    cursor: Annotated[str | None, Query(pattern=E164_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DncPage:
    page = await list_dnc(store, workspace.id, limit=limit, after=cursor)
    return DncPage(
        numbers=[DncEntryOut.of(entry) for entry in page.entries],
        next_cursor=page.next_cursor,
        total=await count_dnc(store, workspace.id),
    )


@router.get("/{number}", responses=error_responses(NOT_FOUND, _PATH_NUMBER))
async def get_dnc_number(number: str, workspace: WorkspaceDep, store: StoreDep) -> DncEntryOut:
    """The number's entry when it is listed (in any written form), else 404."""
    return await dnc.find_dnc_number(store, workspace.id, number)


@router.delete("/{number}", status_code=204, responses=error_responses(NOT_FOUND, _PATH_NUMBER))
async def delete_dnc_number(number: str, workspace: WorkspaceDep, store: StoreDep) -> None:
    await dnc.remove_dnc_number(store, workspace.id, number)
