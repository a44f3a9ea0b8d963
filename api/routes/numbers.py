"""Caller ids of the calling workspace.

A number belongs to at most one workspace (NUMBER_TAKEN), and its trunk is one Outdial
creates for it or a raw trunk id the operator assigned to the workspace (TRUNK_NOT_ASSIGNED);
the store's save script decides both atomically with the write.

A trunk is created through the single-shot LiveKit client: each CreateSIPOutboundTrunk that
reaches LiveKit creates a trunk, so a replayed request leaves orphan trunks nobody deletes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import aiohttp
from fastapi import APIRouter
from livekit import api as lkapi

from api.deps import LiveKitDep, SingleShotLiveKitDep, StoreDep, WorkspaceDep
from api.errors import ApiError, not_found
from api.openapi import BODY, NOT_FOUND, STORAGE, WORKSPACE_AUTH, error_responses
from api.schemas.numbers import NumberCreate, NumberList, NumberOut
from api.store import numbers
from sip import InvalidNumberError, TrunkSettings, create_outbound_trunk, delete_trunk, to_e164

router = APIRouter(
    prefix="/v1/api/numbers", tags=["numbers"], responses=error_responses(WORKSPACE_AUTH, STORAGE)
)
logger = logging.getLogger("outdial.api")


def _e164(raw: str) -> str:
    try:
        return to_e164(raw)
    except InvalidNumberError as exc:
        raise ApiError(400, "INVALID_NUMBER", str(exc), {"number": raw}) from exc


def _taken(number: str) -> ApiError:
    return ApiError(
        409, "NUMBER_TAKEN", f"{number} is registered by another workspace", {"number": number}
    )


def _trunk_not_assigned(trunk_id: str) -> ApiError:
    return ApiError(
        403,
        "TRUNK_NOT_ASSIGNED",
        f"trunk {trunk_id} is not assigned to this workspace: the operator assigns trunks "
        "(POST /v1/admin/workspaces/{id}/trunks), or register the number with a trunk spec",
        {"sip_trunk_id": trunk_id},
    )


async def _drop_trunk(livekit: lkapi.LiveKitAPI, trunk_id: str) -> None:
    """Deletes a trunk Outdial created that no number uses any more; a failure is logged."""
    try:
        await delete_trunk(livekit, trunk_id)
    except (lkapi.ServerError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        # The number's change stands either way (an error here would send a retry to a
        # different answer); an orphaned trunk is harmless and logged.
        logger.warning("could not delete trunk %s: %s", trunk_id, exc)


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
    single_shot_livekit: SingleShotLiveKitDep,
) -> NumberOut:
    number = _e164(body.number)
    trunk_id = body.sip_trunk_id or ""
    if body.trunk is not None:
        # Checked before LiveKit creates a trunk for nothing; the save checks again.
        if await numbers.number_holder(store, number) not in (None, workspace.id):
            raise _taken(number)
        spec = TrunkSettings(**body.trunk.model_dump())
        try:
            trunk_id = await create_outbound_trunk(
                single_shot_livekit,
                number,
                spec,
                name=f"outdial {workspace.id} {number}",
            )
        except (lkapi.ServerError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            # A 5xx or a dropped connection may still have created the trunk (not replayed,
            # see above); the number is not saved, so such a trunk is an orphan at LiveKit.
            raise ApiError(
                502, "LIVEKIT_ERROR", f"LiveKit refused to create the trunk: {exc}"
            ) from exc
    saved = await numbers.save_number(
        store,
        workspace.id,
        number,
        trunk_id,
        default=body.default,
        trunk_managed=body.trunk is not None,
    )
    if isinstance(saved, numbers.SaveRefusal):
        if body.trunk is not None:
            # Another workspace took the number since the check above.
            await _drop_trunk(livekit, trunk_id)
        if saved is numbers.SaveRefusal.TAKEN:
            raise _taken(number)
        raise _trunk_not_assigned(trunk_id)
    if saved.replaced_trunk_id:
        await _drop_trunk(livekit, saved.replaced_trunk_id)
    return NumberOut(**asdict(saved.number))


@router.get("", response_model=NumberList)
async def list_numbers(workspace: WorkspaceDep, store: StoreDep) -> dict[str, list[NumberOut]]:
    found = await numbers.list_numbers(store, workspace.id)
    return {"numbers": [NumberOut(**asdict(number)) for number in found]}


@router.delete(
    "/{number}",
    status_code=204,
    responses=error_responses(NOT_FOUND, {400: "INVALID_NUMBER: not a phone number"}),
)
async def delete_number(
    number: str, workspace: WorkspaceDep, store: StoreDep, livekit: LiveKitDep
) -> None:
    removed = await numbers.delete_number(store, workspace.id, _e164(number))
    if removed is None:
        raise not_found("number", number)
    if removed.trunk_managed:
        await _drop_trunk(livekit, removed.sip_trunk_id)
