"""One description of the call record (`api.store.call_fields`): every hash field the Lua
reads or writes on a call is described, every described field is written by someone, and
the API's view shows exactly the fields the description marks shown. Pure: the store's
source text and the models, no Redis."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from api.schemas.calls import CallView
from api.settings import Settings
from api.store.call_fields import NUMBER, TEXT, describe, stored
from api.store.call_record import CALL_FIELD, CALL_FIELDS, CallBudgets, CallDraft, CallUpdate
from tests.lua_fields import FieldUse, call_field_uses, lua_sources, store_field_uses
from tests.records import AGENT

HASH_NAMES = frozenset(name for f in CALL_FIELDS for name in f.hash_names)
PER_STATUS_PREFIXES = frozenset(f.hash_name for f in CALL_FIELDS if f.codec.per_status)


def undescribed(uses: list[FieldUse]) -> list[FieldUse]:
    """The uses naming a hash field the description does not."""
    return [
        use
        for use in uses
        if (use.field not in PER_STATUS_PREFIXES if use.prefix else use.field not in HASH_NAMES)
    ]


def test_every_call_field_a_lua_script_names_is_described() -> None:
    sources = lua_sources()
    uses = store_field_uses()
    # Not vacuous: the scan found the scripts, wherever they live now, and their fields.
    assert sources, "no Lua found under api/store"
    assert {"status", "seq", "billed_s", "waiting_since"} <= {use.field for use in uses}
    assert undescribed(uses) == []


def test_the_scan_reads_the_kcall_convention_and_catches_an_undescribed_field(
    tmp_path: Path,
) -> None:
    snippet = """
local kcall, kevents = KEYS[1], KEYS[2]
local f = redis.call('HMGET', kcall, 'status',  -- a comment, with a 'quote'
                     "seq", 'not_a_call_field')
redis.call('HSET', kcall, 'updated_at', now, 'ts_' .. status, now, field, value)
redis.call('HSETNX', kcall, 'tx_' .. status, now)
redis.call('HINCRBY', kcall, 'event_bytes', math.max(size, 1))
redis.call('HGET', kevents, 'not_the_call')
redis.call('HDEL', KEYS[1], 'also_not_the_call')
"""
    uses = call_field_uses(snippet, "snippet.lua")
    assert [(u.command, u.field, u.prefix, u.writes) for u in uses] == [
        ("HMGET", "status", False, False),
        ("HMGET", "seq", False, False),
        ("HMGET", "not_a_call_field", False, False),
        ("HSET", "updated_at", False, True),
        ("HSET", "ts_", True, True),
        ("HSETNX", "tx_", True, True),
        ("HINCRBY", "event_bytes", False, True),
    ]
    assert uses[2].where == "snippet.lua:3"
    assert [(u.field, u.prefix) for u in undescribed(uses)] == [
        ("not_a_call_field", False),
        ("tx_", True),
    ]

    # Lua in `.lua` files and in the strings of Python modules is found alike.
    (tmp_path / "lua").mkdir()
    (tmp_path / "lua" / "a.lua").write_text("redis.call('HGET', kcall, 'id')\n")
    (tmp_path / "b.py").write_text("B = '''\nredis.call('HEXISTS', kcall, 'seq')\n'''\n")
    (tmp_path / "c.py").write_text("C = 1\n")
    assert sorted(p.name for p in lua_sources(tmp_path)) == ["a.lua", "b.py"]


def _accepted_fields() -> set[str]:
    """The hash fields an accept writes, from a draft with every field set."""
    draft = CallDraft(
        id="c1",
        workspace_id="ws_1",
        agent_id="a" * 24,
        to="+14155552671",
        from_number="+15105550100",
        sip_trunk_id="ST_x",
        room_name="room-1",
        callback_url="https://example.com/hook",
        dynamic_variables={"name": "Ada"},
        metadata={"crm": 7},
        campaign_id="spring",
        max_duration_seconds=600,
        ring_timeout_seconds=30,
        agent=AGENT,
        budgets=CallBudgets.from_settings(Settings()),
        idempotency_key="k-1",
        call_window='{"tz":"UTC"}',
    )
    return set(draft.record(1_800_000_000_000, "job-1").to_hash())


def _updated_fields() -> set[str]:
    """The hash fields an event's update can write (`CallUpdate.to_fields`)."""
    every: dict[str, Any] = {
        f.name: "x" if CALL_FIELD[f.name].codec is TEXT else 1
        for f in dataclasses.fields(CallUpdate)
    }
    return set(CallUpdate(**every).to_fields())


def test_every_described_field_is_written_by_the_accept_an_update_or_a_script() -> None:
    written = (
        _accepted_fields()
        | _updated_fields()
        | {use.field for use in store_field_uses() if use.writes and not use.prefix}
    )
    prefixes = {use.field for use in store_field_uses() if use.writes and use.prefix}
    dead = [
        f.name
        for f in CALL_FIELDS
        if not (set(f.hash_names) & written or (f.codec.per_status and f.hash_name in prefixes))
    ]
    assert dead == []


def test_what_python_writes_on_a_call_is_described() -> None:
    # The field/value pairs an event writes reach the scripts as ARGV: named in Python.
    assert _updated_fields() == {f.name for f in dataclasses.fields(CallUpdate)}
    assert _updated_fields() <= HASH_NAMES
    assert _accepted_fields() <= HASH_NAMES


def test_the_view_shows_exactly_the_fields_described_shown() -> None:
    shown = {f.shown_as for f in CALL_FIELDS if f.shown_as is not None}
    assert shown == set(CallView.model_fields)


def test_a_field_without_a_description_or_a_reader_is_refused() -> None:
    @dataclasses.dataclass
    class Undescribed:
        name: str

    @dataclasses.dataclass
    class RequiredNumber:
        seconds: float = dataclasses.field(metadata=stored(NUMBER))

    with pytest.raises(TypeError, match=r"Undescribed\.name is not described"):
        describe(Undescribed)
    with pytest.raises(TypeError, match=r"RequiredNumber\.seconds: no required form"):
        describe(RequiredNumber)


def test_an_agent_snapshot_is_written_as_its_own_json_whatever_the_cache_holds() -> None:
    """The snapshot's JSON is cached per object (`call_fields._agent_json`): every object,
    equal to a cached one or not, past the cache's size or not, is written as itself."""
    write = CALL_FIELD["agent"].codec.write
    agents = [AGENT.model_copy(update={"name": f"agent {index}"}) for index in range(600)]
    for _ in range(2):
        for agent in agents:
            assert write(agent) == agent.model_dump_json()
    twin = AGENT.model_copy(update={"name": "agent 7"})
    assert twin is not agents[7] and write(twin) == write(agents[7])
    assert write(AGENT.model_copy(update={"instructions": "other"})) != write(AGENT)
