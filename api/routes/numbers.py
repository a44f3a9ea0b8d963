"""Caller ids of the calling workspace (the rules and the trunk lifecycle:
`api.services.numbers`)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import LiveKitDep, SingleShotLiveKitDep, StoreDep, WorkspaceDep
from api.openapi import BODY, NOT_FOUND, STORAGE, WORKSPACE_AUTH, error_responses
from api.schemas.numbers import NumberCreate, NumberList, NumberOut
from api.services import numbers
from api.store.numbers import list_numbers as workspace_numbers

router = APIRouter(
    prefix="/v1/api/numbers", tags=["numbers"], responses=error_responses(WORKSPACE_AUTH, STORAGE)
)


@router.post(
    "",
    status_code=201,
    responses=error_responses(
        BODY,
        {
            400: "INVALID_NUMBER",
            403: f"{WORKSPACE_AUTH[403]}, TRUNK_NOT_ASSIGNED (a trunk the operator has not "
            "assigned to the workspace)",
            409: "NUMBER_TAKEN: another workspace registered the number",
            502: "LIVEKIT_ERROR: LiveKit did not create the trunk, nothing was stored",
        },
    ),
)
async def register_number(
    body: NumberCreate,
    workspace: WorkspaceDep,
    store: StoreDep,
    livekit: LiveKitDep,
    single_shot: SingleShotLiveKitDep,
) -> NumberOut:
    saved = await numbers.register_number(store, livekit, single_shot, workspace.id, body)
    return NumberOut.of(saved)


@router.get("")
async def list_numbers(workspace: WorkspaceDep, store: StoreDep) -> NumberList:
    found = await workspace_numbers(store, workspace.id)
    return NumberList(numbers=[NumberOut.of(number) for number in found])


@router.delete(
    "/{number}",
    status_code=204,
    responses=error_responses(NOT_FOUND, {400: "INVALID_NUMBER: not a phone number"}),
)
async def delete_number(
    number: str, workspace: WorkspaceDep, store: StoreDep, livekit: LiveKitDep
) -> None:
    await numbers.remove_number(store, livekit, workspace.id, number)
