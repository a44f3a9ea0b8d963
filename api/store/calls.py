"""Call records: accept (record + dispatch message + first event, atomically), read, list."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, get_args

from pydantic_core import to_json

from agent_runtime.contract import TERMINAL_STATUSES, CallStatus
from api.settings import Settings
from api.store.base import Store
from api.store.events import EventSpec, apply_args, event_keys
from api.store.messages import DIAL_QUEUE, DISPATCH_ACTOR, encode_message

IDEMPOTENCY_TTL_SECONDS = 86_400
CALL_STATUSES: tuple[str, ...] = get_args(CallStatus)
_JSON_FIELDS = ("dynamic_variables", "metadata", "agent")
_INT_FIELDS = (
    "max_duration_seconds",
    "ring_timeout_seconds",
    "seq",
    "sip_status_code",
    "dispatch_timeout_s",
    "agent_ready_timeout_s",
    "answer_grace_s",
    "deadline_margin_s",
)


@dataclass(frozen=True, slots=True)
class CallBudgets:
    """How long each state of the call may last, fixed at accept time so a call keeps its
    deadlines when the settings change (`lua.DEADLINE_FN` reads them from the record)."""

    dial_mode: str
    dispatch_timeout_s: int
    agent_ready_timeout_s: int
    answer_grace_s: int
    deadline_margin_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> CallBudgets:
        return cls(
            dial_mode=settings.dial_mode,
            dispatch_timeout_s=settings.dispatch_timeout_seconds,
            agent_ready_timeout_s=settings.agent_ready_timeout_seconds,
            answer_grace_s=settings.agent_answer_grace_seconds,
            deadline_margin_s=settings.deadline_margin_seconds,
        )

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class CallDraft:
    """Everything the API decided about a call before it is stored."""

    id: str
    workspace_id: str
    agent_id: str
    to: str
    from_number: str | None
    sip_trunk_id: str
    room_name: str
    callback_url: str | None
    dynamic_variables: dict[str, Any]
    metadata: dict[str, Any]
    campaign_id: str | None
    max_duration_seconds: int
    ring_timeout_seconds: int
    agent: dict[str, Any]
    budgets: CallBudgets
    job_id: str = ""
    idempotency_key: str | None = None

    def to_hash(self, now_ms: int) -> dict[str, str]:
        values: dict[str, Any] = {
            "id": self.id,
            "workspace_id": self.workspace_id,
            "agent_id": self.agent_id,
            "to": self.to,
            "from": self.from_number,
            "sip_trunk_id": self.sip_trunk_id,
            "room_name": self.room_name,
            "callback_url": self.callback_url,
            "campaign_id": self.campaign_id,
            "max_duration_seconds": self.max_duration_seconds,
            "ring_timeout_seconds": self.ring_timeout_seconds,
            "job_id": self.job_id,
            "idempotency_key": self.idempotency_key,
            "status": "queued",
            "created_at": now_ms,
            "updated_at": now_ms,
            "ts_queued": now_ms,
            "seq": 0,
            **self.budgets.fields(),
        }
        for name in _JSON_FIELDS:
            values[name] = to_json(getattr(self, name)).decode()
        return {k: str(v) for k, v in values.items() if v is not None}


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A stored call as read back from its hash."""

    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> CallRecord:
        parsed: dict[str, Any] = dict(raw)
        for name in _JSON_FIELDS:
            if name in parsed:
                parsed[name] = json.loads(parsed[name])
        for name in _INT_FIELDS:
            if parsed.get(name):
                parsed[name] = int(parsed[name])
        return cls(parsed)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    @property
    def is_terminal(self) -> bool:
        return self.fields.get("status") in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class AcceptOutcome:
    created: bool
    # The first answer for this idempotency key (when not created), as stored.
    previous: dict[str, Any] | None = None


async def accept_call(
    store: Store,
    draft: CallDraft,
    response: dict[str, Any],
    request_hash: str | None,
) -> AcceptOutcome:
    """Store the call, its dispatch message, its idempotency record and `call.queued`.

    One script: either everything exists afterwards or nothing does. With an idempotency
    key already used, nothing is written and the first answer comes back.
    """
    keys = store.keys
    now_ms = int(time.time() * 1000)
    dial = encode_message(DIAL_QUEUE, DISPATCH_ACTOR, draft.id)
    draft_hash = draft.to_hash(now_ms) | {"job_id": dial.message_id}
    response = response | {"jobId": dial.message_id}
    idem_key = keys.idempotency(draft.workspace_id, draft.idempotency_key or "")
    idem_value = to_json({"request_hash": request_hash, "response": response})

    queued = EventSpec(type="call.queued", data={"to": draft.to, "agentId": draft.agent_id})
    result = await store.lean.evalsha(
        store.accept_call_script,
        keys=[
            *event_keys(store, draft.id),
            keys.calls(draft.workspace_id),
            keys.room(draft.room_name),
            idem_key if draft.idempotency_key else "",
            store.dial_queue.messages,
            store.dial_queue.ids,
        ],
        args=[
            idem_value,
            IDEMPOTENCY_TTL_SECONDS,
            now_ms,
            store.retention_seconds,
            dial.message_id,
            dial.body,
            to_json(draft_hash),
            # A call without callback URL never needs a relay message.
            *apply_args(store, queued, now_ms, draft.id if draft.callback_url else ""),
        ],
    )
    if result[0] == "existing":
        return AcceptOutcome(created=False, previous=json.loads(result[1]))
    if result[0] != "created":
        raise RuntimeError(f"call id collision for {draft.id}")
    return AcceptOutcome(created=True, previous={"response": response})


async def get_call(store: Store, call_id: str) -> CallRecord | None:
    raw = await store.redis.hgetall(store.keys.call(call_id))
    return CallRecord.from_hash(raw) if raw else None


async def get_workspace_call(store: Store, workspace_id: str, call_id: str) -> CallRecord | None:
    call = await get_call(store, call_id)
    if call is None or call.get("workspace_id") != workspace_id:
        return None
    return call


async def call_id_for_room(store: Store, room_name: str) -> str | None:
    return await store.redis.get(store.keys.room(room_name))


# A filtered list examines at most this many index entries per request, so a page costs
# the same whatever the filter matches; a page cut short still carries a cursor.
MAX_SCAN_PER_PAGE = 1000


@dataclass(frozen=True, slots=True)
class CallPage:
    calls: list[CallRecord]
    next_cursor: str | None


def _matches(
    call: CallRecord, status: str | None, agent_id: str | None, campaign_id: str | None
) -> bool:
    return (
        (not status or call.get("status") == status)
        and (not agent_id or call.get("agent_id") == agent_id)
        and (not campaign_id or call.get("campaign_id") == campaign_id)
    )


async def list_calls(
    store: Store,
    workspace_id: str,
    *,
    limit: int,
    cursor: str | None,
    status: str | None = None,
    agent_id: str | None = None,
    campaign_id: str | None = None,
    max_scan: int = MAX_SCAN_PER_PAGE,
) -> CallPage:
    """Newest first. The cursor is the (unique) index score of the last call examined:
    with a filter, a page may hold fewer than `limit` calls (even none) and still have a
    cursor, when `max_scan` entries were examined; `None` once the index is exhausted."""
    index = store.keys.calls(workspace_id)
    upper = f"({cursor}" if cursor else "+inf"
    found: list[CallRecord] = []
    expired: list[str] = []
    scan_batch = max(limit * 2, 50)
    examined = 0
    exhausted = False
    while len(found) < limit and examined < max_scan:
        wanted = min(scan_batch, max_scan - examined)
        batch = await store.redis.zrevrangebyscore(
            index, upper, "-inf", start=0, num=wanted, withscores=True
        )
        pipe = store.redis.pipeline(transaction=False)
        for call_id, _ in batch:
            pipe.hgetall(store.keys.call(call_id))
        rows = await pipe.execute() if batch else []
        for (call_id, score), raw in zip(batch, rows, strict=True):
            examined += 1
            upper = f"({int(score)}"
            if not raw:
                expired.append(call_id)
                continue
            call = CallRecord.from_hash(raw)
            if _matches(call, status, agent_id, campaign_id):
                found.append(call)
                if len(found) == limit:
                    break
        if len(batch) < wanted and len(found) < limit:
            exhausted = True
            break
    if expired:
        await store.redis.zrem(index, *expired)
    return CallPage(found, None if exhausted or examined == 0 else upper[1:])
