"""The do-not-call list's rules: each number is parsed as the call accept parses `to`
(`sip.numbers.parse_number`), so a listed number is exactly the E.164 form a call to it is
stored with, and a list past its limit is refused whole (`api.store.dnc`)."""

from __future__ import annotations

from api.errors import ApiError, not_found
from api.schemas.dnc import DncAdd, DncAdded, DncEntryOut, InvalidDncNumber
from api.store.base import Store
from api.store.dnc import DncListFull, add_to_dnc, dnc_entry, remove_from_dnc
from sip import InvalidNumberError
from sip.numbers import parse_number


def dnc_e164(raw: str) -> str:
    """`raw` as E.164; INVALID_NUMBER (400) when it is not a number."""
    try:
        return parse_number(raw).e164
    except InvalidNumberError as exc:
        raise ApiError(400, "INVALID_NUMBER", str(exc), {"number": raw}) from exc


async def add_numbers_to_dnc(store: Store, workspace_id: str, body: DncAdd) -> DncAdded:
    """List every valid number of `body` (source `api`) and account for each item;
    DNC_LIST_FULL (409, nothing added) when the new ones would pass the list's limit."""
    valid: list[str] = []
    invalid: list[InvalidDncNumber] = []
    for index, raw in enumerate(body.numbers):
        try:
            valid.append(parse_number(raw).e164)
        except InvalidNumberError as exc:
            invalid.append(InvalidDncNumber(index=index, number=raw, reason=str(exc)))
    try:
        added = await add_to_dnc(store, workspace_id, valid, "api")
    except DncListFull as exc:
        details = {"limit": exc.limit, "size": exc.size}
        raise ApiError(409, "DNC_LIST_FULL", str(exc), details) from exc
    return DncAdded(added=added, already_listed=len(valid) - added, invalid=invalid)


async def find_dnc_number(store: Store, workspace_id: str, raw: str) -> DncEntryOut:
    entry = await dnc_entry(store, workspace_id, dnc_e164(raw))
    if entry is None:
        raise not_found("do-not-call number", raw)
    return DncEntryOut.of(entry)


async def remove_dnc_number(store: Store, workspace_id: str, raw: str) -> None:
    if not await remove_from_dnc(store, workspace_id, dnc_e164(raw)):
        raise not_found("do-not-call number", raw)
