"""How each field of the call record is described: its hash field, its encoding, its view.

Invariant: a field of `CallRecord` is described once, where it is declared
(`field(metadata=stored(...))`), and every conversion of the record is derived from that
description (`describe`): `from_hash`, `to_hash`, `CallUpdate.to_fields`, `CallDraft.record`
(`api.store.call_record`) and `CallView.of` (`api.schemas.calls`). Every hash field a Lua
script reads or writes on a call is one the description names (`tests/test_call_fields.py`
scans the scripts), so Python and Lua cannot drift apart; hash names never change, so no
stored call needs a migration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import ValidationError
from pydantic_core import to_json

from agent_runtime.contract import AgentConfig, CallStatus
from api.store.records import HashFields, UnreadableRecord

CALL_STATUSES: tuple[str, ...] = get_args(CallStatus)

Reader = Callable[[HashFields, str], Any]


@dataclass(frozen=True, slots=True)
class Codec:
    """How a value is kept as hash text. `required` reads a field every record has,
    `optional` one a record may lack (None: the codec has no such form); `write` is the
    text. `time`: epoch ms, which the API shows as a timestamp. `per_status`: one hash field
    per call status (`<hash_name><status>`), read and written as a {status: value} dict."""

    required: Reader | None
    optional: Reader | None
    write: Callable[[Any], str] = str
    time: bool = False
    per_status: bool = False


def _status(read: HashFields, name: str) -> str:
    status = read.text(name)
    if status not in CALL_STATUSES:
        raise UnreadableRecord(f"status {status[:40]!r} is not a call status")
    return status


def _agent_snapshot(read: HashFields, name: str) -> AgentConfig | None:
    raw = read.optional_text(name)
    if raw is None:
        return None
    try:
        return AgentConfig.model_validate_json(raw)
    except ValidationError:
        read.garbled(name, raw, "an agent snapshot")
        return None


def _per_status(read: HashFields, prefix: str) -> dict[str, int]:
    found = {status: read.optional_integer(prefix + status) for status in CALL_STATUSES}
    return {status: ms for status, ms in found.items() if ms is not None}


def _json_text(value: object) -> str:
    return to_json(value).decode()


# A snapshot is frozen and the accept path passes the same few objects (`api.store.agents`
# builds one per agent document): the JSON written into every call is made once per object.
# Keyed by identity (hashing the nested model costs half the dump); an entry holds its
# object, so the id cannot be reused while the entry lives.
_AGENT_JSON: dict[int, tuple[AgentConfig, str]] = {}
_AGENT_JSON_SIZE = 512


def _agent_json(agent: AgentConfig) -> str:
    cached = _AGENT_JSON.get(id(agent))
    if cached is not None and cached[0] is agent:
        return cached[1]
    text = agent.model_dump_json()
    if len(_AGENT_JSON) >= _AGENT_JSON_SIZE:
        _AGENT_JSON.clear()
    _AGENT_JSON[id(agent)] = (agent, text)
    return text


TEXT = Codec(HashFields.text, HashFields.optional_text)
INTEGER = Codec(HashFields.integer, HashFields.optional_integer)
MS = Codec(HashFields.integer, HashFields.optional_integer, time=True)
NUMBER = Codec(None, HashFields.optional_number)
STATUS = Codec(_status, None)
# Absent or not a JSON object: {} (a dict field has a default, so it is optional).
JSON_OBJECT = Codec(None, HashFields.json_object, _json_text)
# In every record, yet None when it does not parse (the agent changed shape since).
AGENT = Codec(_agent_snapshot, None, _agent_json)
MS_PER_STATUS = Codec(None, _per_status, time=True, per_status=True)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """What `stored` attaches to a dataclass field (see `RecordField`)."""

    codec: Codec
    hash_name: str | None
    shown: bool | str
    blank_shown_as_null: bool


_SPEC = "outdial.stored"


def stored(
    codec: Codec,
    *,
    hash_name: str | None = None,
    shown: bool | str = False,
    blank_shown_as_null: bool = False,
) -> Mapping[str, FieldSpec]:
    """The metadata of a stored field: kept as `codec` under `hash_name` (default: the
    attribute's name); `shown` by the API (True: under the same name, a text: under that
    name), an empty text there as null when `blank_shown_as_null`."""
    return {_SPEC: FieldSpec(codec, hash_name, shown, blank_shown_as_null)}


@dataclass(frozen=True, slots=True)
class RecordField:
    """One field of a record, resolved from its declaration.

    `required`: the field has no default, so every record has it (a missing or garbled
    value makes the record unreadable, `api.store.records`). `shown_as`: its name in the
    API's view, None when the API does not show it."""

    name: str
    hash_name: str
    codec: Codec
    required: bool
    shown_as: str | None
    blank_shown_as_null: bool
    read: Reader

    @property
    def hash_names(self) -> tuple[str, ...]:
        """The hash fields it is kept in."""
        if self.codec.per_status:
            return tuple(self.hash_name + status for status in CALL_STATUSES)
        return (self.hash_name,)


def describe(record_type: type[Any]) -> tuple[RecordField, ...]:
    """The description of every field of the dataclass `record_type`, in declaration order;
    a field declared without `stored`, or with a codec that cannot read it, is an error."""
    described = []
    for declared in dataclasses.fields(record_type):
        spec = declared.metadata.get(_SPEC)
        if not isinstance(spec, FieldSpec):
            raise TypeError(f"{record_type.__name__}.{declared.name} is not described (stored)")
        required = (
            declared.default is dataclasses.MISSING
            and declared.default_factory is dataclasses.MISSING
        )
        read = spec.codec.required if required else spec.codec.optional
        if read is None:
            needed = "required" if required else "optional"
            raise TypeError(f"{record_type.__name__}.{declared.name}: no {needed} form")
        shown = spec.shown
        shown_as = declared.name if shown is True else shown if isinstance(shown, str) else None
        described.append(
            RecordField(
                name=declared.name,
                hash_name=spec.hash_name or declared.name,
                codec=spec.codec,
                required=required,
                shown_as=shown_as,
                blank_shown_as_null=spec.blank_shown_as_null,
                read=read,
            )
        )
    return tuple(described)
