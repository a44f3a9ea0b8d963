"""Caller ids of a workspace: E.164 number -> LiveKit outbound trunk, one of them default.

Invariants: a number belongs to at most one workspace (its holder key, set in the same
script as the number); a number's trunk is either one Outdial created for it (recorded as
the workspace's) or a raw trunk id the operator assigned to the workspace. The accept path
checks the second again, since the operator may withdraw an assignment (`trunk_allowed`).
A number is stored as one JSON document in the workspace's numbers hash: `CallerNumber`'s
`from_json`/`to_json` are its one conversion (the save script also edits `default` in
place), and a document that does not parse is unreadable (`api.store.records`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import cast

from pydantic import TypeAdapter

from api.store.base import Store
from api.store.records import readable, strict_document
from api.store.scripts import Key, ScriptCall


@dataclass(frozen=True, slots=True)
class CallerNumber:
    number: str  # E.164
    sip_trunk_id: str
    default: bool
    # The trunk is one Outdial created for this number (deleted with it).
    trunk_managed: bool
    created_at: int  # ms

    @classmethod
    def from_json(cls, raw: str) -> CallerNumber:
        """`UnreadableRecord` when the document does not parse (strict: Outdial wrote it)."""
        return strict_document(_NUMBER, raw)

    def to_json(self) -> str:
        return _NUMBER.dump_json(self).decode()


_NUMBER: TypeAdapter[CallerNumber] = TypeAdapter(CallerNumber)


class SaveRefusal(Enum):
    TAKEN = "taken"  # another workspace holds the number
    UNASSIGNED = "unassigned"  # a raw trunk id the operator did not assign to the workspace


@dataclass(frozen=True, slots=True)
class SavedNumber:
    number: CallerNumber
    # A trunk Outdial had created for this number before it was registered again ('' none).
    replaced_trunk_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveNumber(ScriptCall):
    NAME = "save_number"
    numbers: Key
    holder: Key
    workspace_trunks: Key
    trunk_owner: Key  # of the record's trunk
    number: str
    record_json: str
    wants_default: str  # '1' | '0'
    workspace_id: str
    trunk_owner_prefix: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteNumber(ScriptCall):
    NAME = "delete_number"
    numbers: Key
    holder: Key
    number: str
    workspace_id: str
    trunk_owner_prefix: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AssignTrunk(ScriptCall):
    NAME = "assign_trunk"
    workspace: Key
    workspace_trunks: Key
    trunk_owner: Key
    trunk_id: str


class AssignResult(Enum):
    ASSIGNED = "assigned"
    MISSING = "missing"  # no such workspace
    OWNED = "owned"  # a trunk Outdial created for a number


def _read(raw: str | None, number: str) -> CallerNumber | None:
    """The number in a stored document; None when there is none or it is unreadable."""
    if raw is None:
        return None
    return readable(lambda: CallerNumber.from_json(raw), f"number {number}")


def _trunk_owner_prefix(store: Store) -> str:
    return store.keys.trunk_owner("")


async def number_holder(store: Store, number: str) -> str | None:
    """The workspace holding `number`, if any (a pre-check; the save decides atomically)."""
    # `store.redis` decodes every reply (open_store): the client's `bytes | str` are str.
    return cast(str | None, await store.redis.get(store.keys.number_holder(number)))


async def save_number(
    store: Store,
    workspace_id: str,
    number: str,
    sip_trunk_id: str,
    *,
    default: bool,
    trunk_managed: bool,
) -> SavedNumber | SaveRefusal:
    record = CallerNumber(number, sip_trunk_id, default, trunk_managed, int(time.time() * 1000))
    keys = store.keys
    reply = await store.run(
        SaveNumber(
            numbers=keys.numbers(workspace_id),
            holder=keys.number_holder(number),
            workspace_trunks=keys.workspace_trunks(workspace_id),
            trunk_owner=keys.trunk_owner(sip_trunk_id),
            number=number,
            record_json=record.to_json(),
            wants_default="1" if default else "0",
            workspace_id=workspace_id,
            trunk_owner_prefix=_trunk_owner_prefix(store),
        )
    )
    if reply[0] != "saved":
        return SaveRefusal(reply[0])
    # What the script just encoded from `record`: it parses.
    return SavedNumber(CallerNumber.from_json(reply[1]), reply[2])


async def list_numbers(store: Store, workspace_id: str) -> list[CallerNumber]:
    """Oldest first; an unreadable number is left out (and logged)."""
    raws = cast(dict[str, str], await store.redis.hgetall(store.keys.numbers(workspace_id)))
    found = (_read(raw, number) for number, raw in raws.items())
    return sorted((n for n in found if n is not None), key=lambda n: n.created_at)


async def get_number(store: Store, workspace_id: str, number: str) -> CallerNumber | None:
    raw = cast(str | None, await store.redis.hget(store.keys.numbers(workspace_id), number))
    return _read(raw, number)


async def delete_number(store: Store, workspace_id: str, number: str) -> CallerNumber | None:
    """Deletes the number, its holder key and its trunk's owner in one step."""
    raw = await store.run(
        DeleteNumber(
            numbers=store.keys.numbers(workspace_id),
            holder=store.keys.number_holder(number),
            number=number,
            workspace_id=workspace_id,
            trunk_owner_prefix=_trunk_owner_prefix(store),
        )
    )
    return _read(raw, number)


async def assign_trunk(store: Store, workspace_id: str, sip_trunk_id: str) -> AssignResult:
    reply = await store.run(
        AssignTrunk(
            workspace=store.keys.workspace(workspace_id),
            workspace_trunks=store.keys.workspace_trunks(workspace_id),
            trunk_owner=store.keys.trunk_owner(sip_trunk_id),
            trunk_id=sip_trunk_id,
        )
    )
    return AssignResult(reply)


async def unassign_trunk(store: Store, workspace_id: str, sip_trunk_id: str) -> bool:
    """False if the trunk was not assigned to the workspace."""
    return bool(await store.redis.srem(store.keys.workspace_trunks(workspace_id), sip_trunk_id))


async def assigned_trunks(store: Store, workspace_id: str) -> list[str]:
    trunks = cast(set[str], await store.redis.smembers(store.keys.workspace_trunks(workspace_id)))
    return sorted(trunks)


def pick_caller(numbers: dict[str, str], wanted: str | None) -> CallerNumber | None:
    """The number a call uses: the requested one, else the workspace default (an
    unreadable number is none of them)."""
    if wanted is not None:
        return _read(numbers.get(wanted), wanted)
    for number, raw in numbers.items():
        candidate = _read(raw, number)
        if candidate is not None and candidate.default:
            return candidate
    return None


def trunk_allowed(caller: CallerNumber | None, trunk_id: str, assigned: set[str]) -> bool:
    """May the workspace dial over `trunk_id`? Its own number's trunk that Outdial created
    for it, or a trunk the operator assigned (the default trunk included)."""
    return (caller is not None and caller.trunk_managed) or trunk_id in assigned
