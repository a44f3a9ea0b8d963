"""Call records: accept (record + dispatch message + first event, atomically), read, list."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Annotated, Any, cast

from pydantic_core import to_json

from api.store.base import Store
from api.store.billing import RESERVE_SECONDS
from api.store.call_record import CallDraft, CallRecord, read_call
from api.store.events import EventArgs, EventKeys, EventSpec, apply_args, event_keys
from api.store.messages import DIAL_QUEUE, DISPATCH_ACTOR, encode_message
from api.store.scripts import KEYS, Key, ScriptCall

IDEMPOTENCY_TTL_SECONDS = 86_400


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptCall(ScriptCall):
    NAME = "accept_call"
    # Up to `reserve_s`: lib/accept_record.lua's, as in `AcceptScheduled`.
    event_keys: Annotated[EventKeys, KEYS]
    ws_calls: Key
    room: Key
    idempotency: Key  # '' when the request has no idempotency key
    balance: Key
    do_not_call: Key
    dial_msgs: Key
    dial_queue: Key
    idem_value: bytes
    idem_ttl_s: int
    created_ms: int
    room_ttl_s: int
    record_json: bytes
    reserve_s: int
    dial_msg_id: str
    dial_msg_body: str
    event: EventArgs


@dataclass(frozen=True, slots=True)
class AcceptOutcome:
    created: bool
    # The first answer for this idempotency key (when not created), as stored.
    previous: dict[str, Any] | None = None
    # Refused: the workspace's balance (seconds) cannot cover the call's reservation.
    balance_short: int | None = None
    # Refused: the number is on the workspace's do-not-call list.
    do_not_call: bool = False


@dataclass(frozen=True, slots=True)
class AcceptWrite:
    """One accept, ready to run: its script call (`AcceptCall`, or
    `scheduled_calls.AcceptScheduled`) and the answer it gives once it created the call."""

    call: ScriptCall
    call_id: str
    response: dict[str, Any]
    to: str  # the callee (E.164): a refusal names it

    def outcome(self, result: list[Any]) -> AcceptOutcome:
        """What the script's reply means (lib/accept_record.lua)."""
        if result[0] == "created":
            return AcceptOutcome(created=True, previous={"response": self.response})
        if result[0] == "existing":
            return AcceptOutcome(created=False, previous=json.loads(result[1]))
        if result[0] == "insufficient":
            return AcceptOutcome(created=False, balance_short=int(result[1]))
        if result[0] == "do_not_call":
            return AcceptOutcome(created=False, do_not_call=True)
        raise RuntimeError(f"call id collision for {self.call_id}")


def accept_call_write(
    store: Store,
    draft: CallDraft,
    response: dict[str, Any],
    request_hash: str | None,
) -> AcceptWrite:
    """The accept of a call due now (`accept_call`), built but not sent."""
    keys = store.keys
    now_ms = int(time.time() * 1000)
    dial = encode_message(DIAL_QUEUE, DISPATCH_ACTOR, draft.id)
    record = draft.record(now_ms, job_id=dial.message_id)
    response = response | {"jobId": dial.message_id}
    idem_key = keys.idempotency(draft.workspace_id, draft.idempotency_key or "")
    idem_value = to_json({"request_hash": request_hash, "response": response})

    queued = EventSpec(type="call.queued", data={"to": draft.to, "agentId": draft.agent_id})
    call = AcceptCall(
        event_keys=event_keys(store, draft.id),
        ws_calls=keys.calls(draft.workspace_id),
        room=keys.room(draft.room_name),
        idempotency=idem_key if draft.idempotency_key else "",
        dial_msgs=store.dial_queue.messages,
        dial_queue=store.dial_queue.ids,
        balance=keys.balance(draft.workspace_id),
        do_not_call=keys.do_not_call(draft.workspace_id),
        idem_value=idem_value,
        idem_ttl_s=IDEMPOTENCY_TTL_SECONDS,
        created_ms=now_ms,
        room_ttl_s=store.retention_seconds,
        dial_msg_id=dial.message_id,
        dial_msg_body=dial.body,
        record_json=to_json(record.to_hash()),
        reserve_s=RESERVE_SECONDS,
        # A call without callback URL never needs a relay message.
        event=apply_args(store, queued, now_ms, draft.id if draft.callback_url else ""),
    )
    return AcceptWrite(call, draft.id, response, draft.to)


async def run_accept(store: Store, write: AcceptWrite) -> AcceptOutcome:
    """Run one accept's script (waited on by replicas, as every accept)."""
    return write.outcome(await store.run_replicated(write.call))


async def accept_call(
    store: Store,
    draft: CallDraft,
    response: dict[str, Any],
    request_hash: str | None,
) -> AcceptOutcome:
    """Store the call, its dispatch message, its idempotency record and `call.queued`.

    One script: either everything exists afterwards or nothing does. With an idempotency
    key already used, nothing is written and the first answer comes back; a number on the
    workspace's do-not-call list gets nothing written (`do_not_call`), nor does a workspace
    whose balance cannot cover `RESERVE_SECONDS` (`balance_short`); else the call holds them
    from its balance in the same step.
    """
    return await run_accept(store, accept_call_write(store, draft, response, request_hash))


async def get_call(store: Store, call_id: str) -> CallRecord | None:
    # `store.redis` decodes every reply (open_store): the client's `bytes | str` are str.
    raw = cast(dict[str, str], await store.redis.hgetall(store.keys.call(call_id)))
    return read_call(raw, call_id)


async def get_workspace_call(store: Store, workspace_id: str, call_id: str) -> CallRecord | None:
    call = await get_call(store, call_id)
    if call is None or call.workspace_id != workspace_id:
        return None
    return call


# A filtered list examines at most this many index entries per request, so a page costs
# the same whatever the filter matches; a page cut short still carries a cursor.
MAX_SCAN_PER_PAGE = 1000


@dataclass(frozen=True, slots=True)
class CallRecordPage:
    """One page of `list_calls`, as stored (the API answers `schemas.calls.CallPage`)."""

    calls: list[CallRecord]
    next_cursor: str | None


def _matches(
    call: CallRecord, status: str | None, agent_id: str | None, campaign_id: str | None
) -> bool:
    return (
        (not status or call.status == status)
        and (not agent_id or call.agent_id == agent_id)
        and (not campaign_id or call.campaign_id == campaign_id)
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
) -> CallRecordPage:
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
        batch = cast(
            list[tuple[str, float]],
            await store.redis.zrevrangebyscore(
                index, upper, "-inf", start=0, num=wanted, withscores=True
            ),
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
            call = read_call(raw, call_id)
            # An unreadable call stays indexed (and in its hash) for an operator to look at.
            if call is not None and _matches(call, status, agent_id, campaign_id):
                found.append(call)
                if len(found) == limit:
                    break
        if len(batch) < wanted and len(found) < limit:
            exhausted = True
            break
    if expired:
        await store.redis.zrem(index, *expired)
    return CallRecordPage(found, None if exhausted or examined == 0 else upper[1:])
