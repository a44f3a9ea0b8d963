"""Stored records: each converts to and from its stored form in one place, and what Redis
holds never makes a reader fail (`api.store.records`): a garbled optional value reads as
absent, a record without a field every such record has is unreadable and treated as absent.
Pure round trips first, then the store's readers on real Redis, then the API."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import fields
from typing import Any

import aiohttp
import pytest
import redis

from agent_runtime.contract import AgentConfig, AgentEvent, PipelineConfig
from api.relay.redeliver import redeliver_event
from api.settings import Settings
from api.store import agents, numbers
from api.store.agents import AgentRecord
from api.store.base import Store, open_store
from api.store.call_record import MAX_UPDATE_TEXT, CallBudgets, CallDraft, CallRecord, CallUpdate
from api.store.call_workspace import CallWithWorkspace
from api.store.calls import get_call, list_calls
from api.store.dial_step import read_and_mark_dialing
from api.store.event_fields import agent_update
from api.store.keys import Keys
from api.store.numbers import CallerNumber, pick_caller
from api.store.records import UnreadableRecord
from api.store.redelivery import enqueue_redelivery
from api.store.workspaces import Workspace
from tests.calls import wait_status
from tests.conftest import REDIS_URL, RUN_ID, Tenant, delete_prefix
from tests.records import ACCEPTED_CALL, AGENT
from tests.support import WorkerProcess

# --- Calls -----------------------------------------------------------------------------

# Everything the call's steps add after the accept (one call cannot have all of these, but
# each is read and written on its own).
LATER_FIELDS = {
    "status": "failed",
    "updated_at": "1800000009000",
    "ts_dispatching": "1800000001000",
    "ts_dialing": "1800000002000",
    "ts_failed": "1800000009000",
    "seq": "4",
    "event_bytes": "812",
    "dial_owner": "job-1",
    "agent_ready_at": "1800000001500",
    "sip_call_id": "SCL_1",
    "sip_participant_id": "PA_1",
    "sip_status_code": "486",
    "sip_status": "Busy Here",
    "end_reason": "busy",
    "error_code": "BUSY",
    "error_message": "the call ended: busy",
    "duration_seconds": "12.345",
    "ended_at": "1800000009000",
}
# Written at accept time, so present in every call record (agent: an absent one reads None).
ALWAYS_WRITTEN = (
    "id",
    "workspace_id",
    "agent_id",
    "to",
    "sip_trunk_id",
    "room_name",
    "status",
    "job_id",
    "max_duration_seconds",
    "ring_timeout_seconds",
    "created_at",
    "updated_at",
    "seq",
    "dynamic_variables",
    "metadata",
)


def test_an_accepted_call_round_trips_with_typed_fields() -> None:
    call = CallRecord.from_hash(ACCEPTED_CALL)
    assert call.to_hash() == ACCEPTED_CALL
    assert (call.max_duration_seconds, call.created_at, call.seq) == (600, 1_800_000_000_000, 0)
    assert call.from_number == "+15105550100" and call.agent == AGENT
    assert call.dynamic_variables == {"name": "Ada", "count": 3}
    assert call.metadata == {"tags": [], "crm": {"id": 7}}
    assert call.transitions == {"queued": 1_800_000_000_000}


def test_a_call_with_every_later_field_round_trips() -> None:
    raw = ACCEPTED_CALL | LATER_FIELDS
    call = CallRecord.from_hash(raw)
    assert call.to_hash() == raw
    assert call.is_terminal and call.sip_status_code == 486 and call.duration_seconds == 12.345
    assert call.transitions == {
        "queued": 1_800_000_000_000,
        "dispatching": 1_800_000_001_000,
        "dialing": 1_800_000_002_000,
        "failed": 1_800_000_009_000,
    }


def test_absent_optional_call_fields_read_as_none_and_stay_absent() -> None:
    raw = {name: ACCEPTED_CALL[name] for name in ALWAYS_WRITTEN}
    call = CallRecord.from_hash(raw)
    assert call.to_hash() == raw
    assert call.agent is None and call.from_number is None and call.dial_mode is None
    assert call.deadline_margin_s is None and call.sip_status_code is None
    assert call.transitions == {}


def test_the_accept_writes_the_draft_through_the_record() -> None:
    draft = CallDraft(
        id="c1",
        workspace_id="ws_1",
        agent_id=AGENT.id,
        to="+14155552671",
        from_number=None,
        sip_trunk_id="ST_x",
        room_name="room-1",
        callback_url=None,
        dynamic_variables={"name": "Ada"},
        metadata={},
        campaign_id=None,
        max_duration_seconds=600,
        ring_timeout_seconds=30,
        agent=AGENT,
        budgets=CallBudgets.from_settings(Settings()),
    )
    record = draft.record(1_800_000_000_000, job_id="job-1")
    written = record.to_hash()
    assert CallRecord.from_hash(written) == record
    # the agent snapshot keeps the contract's JSON shape (what the dispatcher sends)
    assert json.loads(written["agent"]) == AGENT.model_dump(mode="json")
    assert {"from", "callback_url", "campaign_id", "idempotency_key"}.isdisjoint(written)


@pytest.mark.parametrize(
    ("field", "value", "attribute", "read_as"),
    [
        # an agent sent text as its SIP code (stored before it was checked; #16)
        ("sip_status_code", "busy", "sip_status_code", None),
        ("duration_seconds", "{'s': 3}", "duration_seconds", None),
        ("duration_seconds", "nan", "duration_seconds", None),
        ("agent_ready_at", "soon", "agent_ready_at", None),
        ("deadline_margin_s", "", "deadline_margin_s", None),
        ("metadata", "{not json", "metadata", {}),
        ("dynamic_variables", "[1, 2]", "dynamic_variables", {}),
        ("agent", '{"id": "a"}', "agent", None),
        ("ts_dialing", "x", "transitions", {"queued": 1_800_000_000_000}),
    ],
)
def test_a_garbled_optional_call_value_reads_as_absent_and_is_logged(
    field: str, value: str, attribute: str, read_as: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="outdial.store"):
        call = CallRecord.from_hash(ACCEPTED_CALL | {field: value}, "call c1")
    assert getattr(call, attribute) == read_as
    assert f"call c1: {field} is not" in caplog.text


@pytest.mark.parametrize(
    "damage",
    [
        {"room_name": None},  # e.g. a field written after the hash expired: only that field
        {"status": None},
        {"status": "exploded"},
        {"created_at": "yesterday"},
        {"max_duration_seconds": "600s"},
    ],
)
def test_a_call_without_an_always_written_field_is_unreadable(damage: dict[str, Any]) -> None:
    raw = {k: v for k, v in (ACCEPTED_CALL | damage).items() if v is not None}
    with pytest.raises(UnreadableRecord):
        CallRecord.from_hash(raw)


def test_a_call_update_writes_the_fields_the_record_reads() -> None:
    update = CallUpdate(
        dial_owner="job-1",
        agent_ready_at=1_800_000_001_500,
        end_reason="busy",
        error_code="BUSY",
        error_message="the call ended: busy",
        sip_status_code=486,
        sip_status="Busy Here",
        duration_seconds=12.345,
    )
    call = CallRecord.from_hash(ACCEPTED_CALL | update.to_fields())
    for written in fields(CallUpdate):
        assert getattr(call, written.name) == getattr(update, written.name), written.name
    long = CallUpdate(error_message="x" * 600, sip_status="y" * 600).to_fields()
    assert long == {"error_message": "x" * MAX_UPDATE_TEXT, "sip_status": "y" * MAX_UPDATE_TEXT}
    # Nothing set writes nothing (the apply script would delete a field written empty).
    assert CallUpdate().to_fields() == CallUpdate(sip_status="").to_fields() == {}


@pytest.mark.parametrize(
    ("event_type", "data", "recorded"),
    [
        (
            "call.ended",
            {"status": "busy", "reason": "busy", "sip_status_code": "486", "sip_status": "Busy"},
            CallUpdate(end_reason="busy", sip_status_code=486, sip_status="Busy"),
        ),
        ("call.ended", {"duration_seconds": 3}, CallUpdate(duration_seconds=3.0)),
        (
            "call.failed",
            {"code": "X", "message": "m", "duration_seconds": "1.5", "sip_status_code": 503},
            CallUpdate(
                end_reason="error",
                error_code="X",
                error_message="m",
                duration_seconds=1.5,
                sip_status_code=503,
            ),
        ),
        # what is not a SIP code or a finite number stays out of the record (#16)
        (
            "call.failed",
            {"reason": "no_answer", "sip_status_code": "busy", "duration_seconds": "nan"},
            CallUpdate(end_reason="no_answer", error_code="NO_ANSWER"),
        ),
        ("call.ended", {"sip_status_code": 99, "duration_seconds": True}, CallUpdate()),
        ("call.ended", {"sip_status_code": "1000", "duration_seconds": [1]}, CallUpdate()),
        # only the end events write on the call
        ("call.answered", {"reason": "busy", "sip_status_code": 200}, CallUpdate()),
    ],
)
def test_what_an_agent_reports_is_typed_before_it_reaches_the_call(
    event_type: Any, data: dict[str, Any], recorded: CallUpdate
) -> None:
    assert agent_update(AgentEvent(type=event_type, data=data)) == recorded


# --- Agents, numbers, workspaces -------------------------------------------------------

# An agent document as the API wrote it before the record type (json.dumps of a dict).
STORED_AGENT = json.dumps(
    {
        "id": "a" * 24,
        "name": "Reminder",
        "instructions": "Remind {{firstName}}.",
        "first_message": "Hi {{firstName|there}}!",
        "worker_name": "outdial-agent",
        "pipeline": PipelineConfig().model_dump(mode="json"),
        "max_duration_seconds": 300,
        "ring_timeout_seconds": None,
        "silence_timeout_seconds": 30,
        "voicemail_action": "leave_message",
        "voicemail_message": "Call us back.",
        "transfer_to": "+14155550000",
        "created_at": 1_800_000_000_000,
        "updated_at": 1_800_000_000_500,
    }
)


def test_an_agent_round_trips_and_reads_documents_written_before_its_type() -> None:
    agent = AgentRecord.from_json(STORED_AGENT)
    # Written before agents had a call window: it reads as none, and is written as null.
    assert agent.call_window is None
    assert agent.fields() == json.loads(STORED_AGENT) | {"call_window": None}
    assert json.loads(agent.to_json()) == json.loads(STORED_AGENT) | {"call_window": None}
    assert AgentRecord.from_json(agent.to_json()) == agent


def test_an_agent_without_its_optional_fields_reads_their_defaults() -> None:
    required = ("id", "name", "instructions", "worker_name", "created_at", "updated_at")
    minimal = {name: json.loads(STORED_AGENT)[name] for name in required}
    agent = AgentRecord.from_json(json.dumps(minimal))
    assert agent.first_message is None and agent.max_duration_seconds is None
    assert agent.voicemail_action == "hangup" and agent.pipeline == PipelineConfig()
    assert AgentRecord.from_json(agent.to_json()) == agent


def test_the_agent_config_carries_every_field_of_the_agent() -> None:
    config = AgentRecord.from_json(STORED_AGENT).config()
    stored = json.loads(STORED_AGENT)
    assert config.model_dump(mode="json") == {
        **{name: stored[name] for name in AgentConfig.model_fields if name in stored},
        "voicemail": {"action": "leave_message", "message": "Call us back."},
    }


def test_a_document_is_parsed_once_and_an_edited_one_anew(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The accept path's agent cache is keyed by the document's text: the same text gives
    the same record and snapshot, an edited document its own, a damaged one is never kept."""
    first = agents.read_agent(STORED_AGENT, "ws", "a")
    assert first is not None and agents.read_agent(STORED_AGENT, "ws", "a") is first
    assert first.config() is first.config()
    edited = agents.read_agent(STORED_AGENT.replace("Reminder", "Renamed"), "ws", "a")
    assert edited is not None and edited.name == "Renamed" and first.name == "Reminder"
    assert edited.config().name == "Renamed"
    damaged = STORED_AGENT.replace('"voicemail_action": "leave_message"', '"voicemail_action": 1')
    with caplog.at_level(logging.ERROR, logger="outdial.store"):
        assert agents.read_agent(damaged, "ws", "a") is None
        assert agents.read_agent(damaged, "ws", "a") is None
    assert sum("unreadable record" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize(
    "document",
    [
        "{not json",
        "[]",
        STORED_AGENT.replace('"created_at": 1800000000000', '"created_at": "yesterday"'),
        STORED_AGENT.replace('"name": "Reminder", ', ""),
        STORED_AGENT.replace('"voicemail_action": "leave_message"', '"voicemail_action": "sing"'),
    ],
)
def test_a_garbled_agent_document_is_unreadable(document: str) -> None:
    with pytest.raises(UnreadableRecord):
        AgentRecord.from_json(document)


def test_a_number_round_trips_and_a_garbled_one_is_unreadable() -> None:
    number = CallerNumber("+15105550100", "ST_x", True, False, 1_800_000_000_000)
    stored = number.to_json()
    assert CallerNumber.from_json(stored) == number
    for garbled in ("{", stored.replace("true", '"yes"'), stored.replace('"ST_x"', "null")):
        with pytest.raises(UnreadableRecord):
            CallerNumber.from_json(garbled)


STORED_WORKSPACE = {
    "id": "ws_1",
    "name": "acme",
    "key_hash": "f" * 64,
    "webhook_secret": "whsec_x",
    "disabled": "1",
    "created_at": "1800000000000",
    "allowed_countries": "US,CA",
}


@pytest.mark.parametrize("allowed_countries", ["US,CA", "", None])
def test_a_workspace_round_trips(allowed_countries: str | None) -> None:
    raw = {k: v for k, v in STORED_WORKSPACE.items() if k != "allowed_countries"}
    if allowed_countries is not None:
        raw["allowed_countries"] = allowed_countries
    workspace = Workspace.from_hash(raw)
    assert workspace.to_hash() == raw
    assert workspace.disabled and workspace.allowed_countries == allowed_countries


def test_a_garbled_workspace_is_unreadable() -> None:
    for damage in ({"created_at": "x"}, {"key_hash": None}):
        raw = {k: v for k, v in (STORED_WORKSPACE | damage).items() if v is not None}
        with pytest.raises(UnreadableRecord):
            Workspace.from_hash(raw)


# --- The store's readers on real Redis -------------------------------------------------


@pytest.fixture
async def store(redis_client: redis.Redis) -> AsyncIterator[Store]:
    prefix = f"odtest-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    opened = open_store(Settings(REDIS_URL=REDIS_URL, OUTDIAL_REDIS_PREFIX=prefix))
    yield opened
    await opened.aclose()
    delete_prefix(redis_client, prefix)


async def test_unreadable_records_are_absent_to_readers_and_left_in_place(store: Store) -> None:
    keys, redis_ = store.keys, store.redis

    readable_call = ACCEPTED_CALL | {"id": "good"}
    await redis_.hset(keys.call("good"), mapping=readable_call)
    await redis_.hset(keys.call("damaged"), mapping={"sip_call_id": "SCL_late"})
    await redis_.zadd(keys.calls("ws_1"), {"good": 1, "damaged": 2})
    assert await get_call(store, "damaged") is None
    page = await list_calls(store, "ws_1", limit=10, cursor=None)
    assert [call.id for call in page.calls] == ["good"]
    # not taken for an expired call: the index entry and the hash stay for the operator
    assert await redis_.zscore(keys.calls("ws_1"), "damaged") == 2
    assert await redis_.hgetall(keys.call("damaged")) == {"sip_call_id": "SCL_late"}

    good = await agents.insert_agent(
        store, "ws_1", {"name": "A", "instructions": "x", "worker_name": "w"}
    )
    await redis_.set(keys.agent("ws_1", "damaged"), '{"id": "damaged"}')
    await redis_.zadd(keys.agents("ws_1"), {"damaged": 0})
    assert await agents.get_agent(store, "ws_1", "damaged") is None
    assert await agents.list_agents(store, "ws_1") == [good]

    saved = await numbers.save_number(
        store, "ws_1", "+15105550100", "ST_x", default=True, trunk_managed=True
    )
    assert isinstance(saved, numbers.SavedNumber)
    await redis_.hset(keys.numbers("ws_1"), "+15105550199", '{"number": 5}')
    assert await numbers.list_numbers(store, "ws_1") == [saved.number]
    stored_numbers = await redis_.hgetall(keys.numbers("ws_1"))
    assert pick_caller(stored_numbers, "+15105550199") is None
    assert pick_caller(stored_numbers, None) == saved.number


async def dial_step_read(store: Store, call_id: str) -> CallWithWorkspace:
    """The dial step's read (a `queued` call is not marked)."""
    start = await read_and_mark_dialing(store, call_id, "token", None)
    assert start.paced is None
    return start.found


async def test_the_dispatcher_and_a_redelivery_read_an_unreadable_call_as_absent(
    store: Store,
) -> None:
    """Regression: a redelivery read the raw hash, so a damaged call raised KeyError and its
    message was retried; the read that the dispatcher and a redelivery share hands out the
    typed call or nothing, and the redelivery ends like one of an expired call."""
    keys, redis_ = store.keys, store.redis
    await redis_.hset(keys.workspace("ws_1"), mapping={"webhook_secret": "s", "disabled": "1"})
    damaged = {k: v for k, v in ACCEPTED_CALL.items() if k != "room_name"}
    await redis_.hset(keys.call("c1"), mapping=damaged)
    await redis_.rpush(keys.events("c1"), '{"id": "e1", "type": "call.queued", "sequence": 1}')
    assert await dial_step_read(store, "c1") == CallWithWorkspace(None, "s", True)

    queued = await enqueue_redelivery(store, "ws_1", "c1", 1, per_minute=5)
    assert queued.outcome == "queued"
    async with aiohttp.ClientSession() as session:
        assert await redeliver_event(store, store.settings, session, "c1", 1) is None
    # done, not retried: its pending flag is gone, nothing was recorded as an attempt
    assert not await redis_.exists(keys.relay_redelivery("c1", 1))
    assert await redis_.hgetall(keys.delivery("c1")) == {}

    await redis_.hset(keys.call("c1"), "room_name", ACCEPTED_CALL["room_name"])
    found = await dial_step_read(store, "c1")
    assert found == CallWithWorkspace(CallRecord.from_hash(ACCEPTED_CALL), "s", True)
    await redis_.hdel(keys.workspace("ws_1"), "disabled", "webhook_secret")
    assert await dial_step_read(store, "c1") == CallWithWorkspace(found.call, "", False)
    gone = await dial_step_read(store, "c2")
    assert gone == CallWithWorkspace(None, "", False)


# --- The API ---------------------------------------------------------------------------


async def test_damaged_records_never_make_the_api_answer_500(
    tenant: Tenant, settings: Settings, redis_client: redis.Redis
) -> None:
    keys = Keys(settings.redis_prefix)
    agent = await tenant.create_agent()
    await tenant.register_number()
    placed = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
    call_id = placed.json()["callId"]
    call_key = keys.call(call_id)

    redis_client.hset(call_key, mapping={"sip_status_code": "busy", "metadata": "{oops"})
    read = await tenant.request("GET", f"/v1/api/call/{call_id}")
    assert read.status_code == 200, read.text
    assert (read.json()["sipStatusCode"], read.json()["metadata"]) == (None, {})

    redis_client.hdel(call_key, "room_name")
    assert (await tenant.request("GET", f"/v1/api/call/{call_id}")).status_code == 404
    listed = await tenant.request("GET", "/v1/api/calls")
    assert listed.status_code == 200 and listed.json()["calls"] == []

    redis_client.set(keys.agent(tenant.id, agent["id"]), "{oops")
    path = f"/v1/api/agents/{agent['id']}"
    assert (await tenant.request("GET", path)).status_code == 404
    assert (await tenant.request("GET", "/v1/api/agents")).json()["agents"] == []
    refused = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
    assert (refused.status_code, refused.json()["code"]) == (404, "INVALID_AGENT")

    # an unreadable workspace opens nothing, like one that does not exist (fails closed)
    redis_client.hset(keys.workspace(tenant.id), "created_at", "yesterday")
    refused = await tenant.request("GET", "/v1/api/agents")
    assert (refused.status_code, refused.json()["code"]) == (403, "PERMISSION_DENIED")


async def test_a_call_whose_agent_snapshot_is_unreadable_fails_before_any_room(
    tenant: Tenant, settings: Settings, redis_client: redis.Redis, lk: Any
) -> None:
    """The dispatcher reads the snapshot as absent: it fails the call at once (no retries of
    a snapshot that will never parse), with nobody rung and no room made."""
    agent = await tenant.create_agent()
    await tenant.register_number()
    placed = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
    call_id = placed.json()["callId"]
    redis_client.hset(Keys(settings.redis_prefix).call(call_id), "agent", '{"id": 7}')
    worker = WorkerProcess(settings).start()
    try:
        view = await wait_status(tenant, call_id, {"failed"})
    finally:
        worker.stop()
    assert (view["errorCode"], view["endReason"]) == ("INVALID_AGENT", "invalid_metadata")
    assert lk.count("RoomService", "CreateRoom") == 0
    assert lk.count("SIP", "CreateSIPParticipant") == 0
