"""Caller ids of the calling workspace.

A trunk is created through the single-shot LiveKit client: each CreateSIPOutboundTrunk that
reaches LiveKit creates a trunk, so a replayed request leaves orphan trunks nobody deletes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import aiohttp
from fastapi import APIRouter
from livekit import api as lkapi

from api.deps import SettingsDep, StoreDep, WorkspaceDep
from api.errors import ApiError, not_found
from api.livekit import livekit_client, single_shot_livekit_client
from api.schemas.numbers import NumberCreate, NumberOut
from api.store import numbers
from sip import InvalidNumberError, TrunkSettings, create_outbound_trunk, delete_trunk, to_e164

router = APIRouter(prefix="/v1/api/numbers", tags=["numbers"])
logger = logging.getLogger("outdial.api")


def _e164(raw: str) -> str:
    try:
        return to_e164(raw)
    except InvalidNumberError as exc:
        raise ApiError(400, "INVALID_NUMBER", str(exc), {"number": raw}) from exc


@router.post("", status_code=201)
async def register_number(
    body: NumberCreate, workspace: WorkspaceDep, store: StoreDep, settings: SettingsDep
) -> NumberOut:
    number = _e164(body.number)
    trunk_id = body.sip_trunk_id or ""
    if body.trunk is not None:
        spec = TrunkSettings(**body.trunk.model_dump())
        try:
            trunk_id = await create_outbound_trunk(
                single_shot_livekit_client(settings),
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
    return NumberOut(**asdict(saved))


@router.get("")
async def list_numbers(workspace: WorkspaceDep, store: StoreDep) -> dict[str, list[NumberOut]]:
    found = await numbers.list_numbers(store, workspace.id)
    return {"numbers": [NumberOut(**asdict(number)) for number in found]}


@router.delete("/{number}", status_code=204)
async def delete_number(
    number: str, workspace: WorkspaceDep, store: StoreDep, settings: SettingsDep
) -> None:
    removed = await numbers.delete_number(store, workspace.id, _e164(number))
    if removed is None:
        raise not_found("number", number)
    if removed.trunk_managed:
        try:
            await delete_trunk(livekit_client(settings), removed.sip_trunk_id)
        except (lkapi.ServerError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            # The number is gone either way (an error here would send a retry to a 404); an
            # orphaned trunk is harmless and logged.
            logger.warning("could not delete trunk %s: %s", removed.sip_trunk_id, exc)
