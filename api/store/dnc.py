"""A workspace's do-not-call list: E.164 numbers, each with when and why it was added.

Invariants: a number is listed exactly while its entry is in the workspace's `dnc` hash
(the accepts and the admission read that hash for the call's number, in their own scripts:
lib/accept_record.lua, admit.lua); the list's order (`dnc:order`) holds the same numbers,
written in the same script as the hash (dnc_add.lua, dnc_remove.lua). An add is all or
nothing: one that would take the list past `OUTDIAL_DNC_MAX_NUMBERS` writes nothing
(`DncListFull`). Adding a listed number again changes nothing, so an add is idempotent and
an entry keeps the time and source of its first add.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast, get_args

from pydantic_core import to_json

from api.store.base import Store
from api.store.clock import now_ms
from api.store.scripts import Key, ScriptCall

# Why a number is on the list: added through the API, by the callee asking the agent
# (`opt_out`), or by a contact import.
DncSource = Literal["api", "opt_out", "import"]
DNC_SOURCES: frozenset[str] = frozenset(get_args(DncSource))


class DncListFull(Exception):
    """The add would take the workspace's list past its limit; nothing was written."""

    def __init__(self, limit: int, size: int, new: int) -> None:
        super().__init__(
            f"the do-not-call list holds {size} of at most {limit} numbers: {new} new ones "
            "do not fit"
        )
        self.limit = limit
        self.size = size


@dataclass(frozen=True, slots=True)
class DncEntry:
    number: str  # E.164
    added_at: int  # ms
    source: str


@dataclass(frozen=True, slots=True)
class DncEntryPage:
    entries: list[DncEntry]
    # The last number of this page, to pass as `after`; None once the list is exhausted.
    next_cursor: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AddToDnc(ScriptCall):
    NAME = "dnc_add"
    dnc: Key
    order: Key
    max_numbers: int
    entry: str  # `<added ms>:<source>`
    numbers_json: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveFromDnc(ScriptCall):
    NAME = "dnc_remove"
    dnc: Key
    order: Key
    number: str


def _entry(number: str, raw: str) -> DncEntry:
    added_at, _, source = raw.partition(":")
    return DncEntry(number, int(added_at) if added_at.isdigit() else 0, source)


async def add_to_dnc(store: Store, workspace_id: str, numbers: Sequence[str], source: str) -> int:
    """List `numbers` (E.164, normalized by the caller) for `workspace_id`; returns how many
    were not listed before. All or nothing: `DncListFull` when they would not fit (one
    script: a caller should send at most a few tens of thousands at a time, as Redis runs
    nothing else meanwhile)."""
    if source not in DNC_SOURCES:
        raise ValueError(f"unknown do-not-call source {source!r}")
    if not numbers:
        return 0
    keys = store.keys
    limit = store.settings.dnc_max_numbers
    reply = await store.run(
        AddToDnc(
            dnc=keys.do_not_call(workspace_id),
            order=keys.do_not_call_order(workspace_id),
            max_numbers=limit,
            entry=f"{now_ms()}:{source}",
            numbers_json=to_json(list(numbers)),
        )
    )
    if reply[0] == "full":
        raise DncListFull(limit, int(reply[1]), int(reply[2]))
    return int(reply[1])


async def remove_from_dnc(store: Store, workspace_id: str, number: str) -> bool:
    """Take `number` off the list; whether it was listed."""
    keys = store.keys
    removed = await store.run(
        RemoveFromDnc(
            dnc=keys.do_not_call(workspace_id),
            order=keys.do_not_call_order(workspace_id),
            number=number,
        )
    )
    return int(removed) == 1


async def dnc_entry(store: Store, workspace_id: str, number: str) -> DncEntry | None:
    """The number's entry, or None when it is not listed."""
    raw = await store.redis.hget(store.keys.do_not_call(workspace_id), number)
    return None if raw is None else _entry(number, cast(str, raw))


async def count_dnc(store: Store, workspace_id: str) -> int:
    return int(await store.redis.hlen(store.keys.do_not_call(workspace_id)))


async def list_dnc(
    store: Store, workspace_id: str, *, limit: int, after: str | None = None
) -> DncEntryPage:
    """Up to `limit` entries in number order, starting after the number `after`."""
    keys = store.keys
    start = f"({after}" if after else "-"
    numbers = cast(
        list[str],
        await store.redis.zrangebylex(
            keys.do_not_call_order(workspace_id), start, "+", start=0, num=limit + 1
        ),
    )
    page = numbers[:limit]
    raws = await store.redis.hmget(keys.do_not_call(workspace_id), page) if page else []
    entries = [
        _entry(number, cast(str, raw)) for number, raw in zip(page, raws, strict=True) if raw
    ]
    return DncEntryPage(entries, page[-1] if len(numbers) > limit else None)
