"""Caller numbers and the LiveKit trunks behind them.

A number belongs to at most one workspace (NUMBER_TAKEN), and its trunk is one Outdial
creates for it or a raw trunk id the operator assigned to the workspace (TRUNK_NOT_ASSIGNED);
the store's save script decides both atomically with the write.

Invariant: no number is saved on a trunk Outdial failed to create, and a trunk Outdial
creates is recorded as the number's only by the save that writes the number. Outdial tries
once to delete a trunk it created whose save was refused, and one it created for a number
that is replaced or removed; that is all it guarantees. A trunk is orphaned at LiveKit
(harmless; nothing deletes it) when a create fails after LiveKit made it, when a delete fails
(logged), or when Redis fails (or the process stops) between the create and the save. It is
created through the single-shot LiveKit client (`api.livekit`): each CreateSIPOutboundTrunk
that reaches LiveKit creates a trunk, so a replayed request would add orphans of its own.
"""

from __future__ import annotations

import logging

from livekit import api as lkapi

from api.errors import ApiError, not_found
from api.livekit import LIVEKIT_ERRORS
from api.schemas.numbers import NumberCreate, TrunkSpec
from api.store import numbers
from api.store.base import Store
from sip import InvalidNumberError, TrunkSettings, create_outbound_trunk, delete_trunk, to_e164
from sip.numbers import number_from_id

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
        {"sipTrunkId": trunk_id},
    )


async def _create_trunk(
    single_shot: lkapi.LiveKitAPI, workspace_id: str, number: str, trunk: TrunkSpec
) -> str:
    try:
        return await create_outbound_trunk(
            single_shot,
            number,
            TrunkSettings(**trunk.model_dump()),
            name=f"outdial {workspace_id} {number}",
        )
    except LIVEKIT_ERRORS as exc:
        # A 5xx or a dropped connection may still have created the trunk (not replayed,
        # see above); the number is not saved, so such a trunk is an orphan at LiveKit.
        raise ApiError(502, "LIVEKIT_ERROR", f"LiveKit refused to create the trunk: {exc}") from exc


async def _drop_trunk(livekit: lkapi.LiveKitAPI, trunk_id: str) -> None:
    """Deletes a trunk Outdial created that no number uses any more; a failure is logged."""
    try:
        await delete_trunk(livekit, trunk_id)
    except LIVEKIT_ERRORS as exc:
        # The number's change stands either way (an error here would send a retry to a
        # different answer); an orphaned trunk is harmless and logged.
        logger.warning("could not delete trunk %s: %s", trunk_id, exc)


async def register_number(
    store: Store,
    livekit: lkapi.LiveKitAPI,
    single_shot: lkapi.LiveKitAPI,
    workspace_id: str,
    body: NumberCreate,
) -> numbers.CallerNumber:
    """Saves the number on its trunk (created with `single_shot` when `body.trunk` specifies
    one); a trunk Outdial created for the number before is deleted (with `livekit`) once
    replaced."""
    number = _e164(body.number)
    trunk_id = body.sip_trunk_id or ""
    if body.trunk is not None:
        # Checked before LiveKit creates a trunk for nothing; the save checks again.
        if await numbers.number_holder(store, number) not in (None, workspace_id):
            raise _taken(number)
        trunk_id = await _create_trunk(single_shot, workspace_id, number, body.trunk)
    saved = await numbers.save_number(
        store,
        workspace_id,
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
    return saved.number


async def remove_number(
    store: Store, livekit: lkapi.LiveKitAPI, workspace_id: str, raw: str
) -> None:
    """Deletes the workspace's number, named as a number or by its id (NOT_FOUND if it has
    none such), and the trunk Outdial created for it."""
    removed = await numbers.delete_number(store, workspace_id, number_from_id(raw) or _e164(raw))
    if removed is None:
        raise not_found("number", raw)
    if removed.trunk_managed:
        await _drop_trunk(livekit, removed.sip_trunk_id)
