"""Placing a batch of calls (`POST /v1/api/calls/batch`): each item as `POST /v1/api/call`
would place its body, in as few Redis round trips as a batch can take.

Invariant: an item's result is the single accept's for that body, because it goes through
the single accept's steps (`CallCreate` from the item's JSON, `call_checks.prepare_call`,
the same accept script and `accepted_answer`); only the round trips are shared: one read
for the whole batch, one pipelined write of every item's script (in item order: a balance
that runs out refuses the items after it, never goes below zero), and, under an
Idempotency-Key, the batch's answer kept for a retry. A problem of the whole batch
(credentials, a body that is not a JSON array of 1 to `MAX_BATCH_CALLS` items, an
Idempotency-Key used with another body) is one error and nothing is written; an item's is
its own result. With a key, a batch cut off by Redis after some items were accepted and sent
again finds those items' records (`api.store.call_batch`) and accepts none of them twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json
from redis.exceptions import ResponseError

from api.auth import Credentials, authorize
from api.callback_urls import CallbackUrlChecks
from api.errors import ApiError, validation_error
from api.ids import is_valid_id
from api.schemas.call_batch import MAX_BATCH_CALLS
from api.schemas.calls import MAX_BODY_BYTES, CallCreate
from api.services.call_checks import (
    AcceptContext,
    accepted_answer,
    check_idempotency_key,
    prepare_call,
    replay,
)
from api.settings import Settings
from api.store.base import Store
from api.store.call_batch import (
    item_idempotency_key,
    read_for_batch,
    run_accepts,
    save_batch_answer,
)
from api.store.calls import AcceptWrite

logger = logging.getLogger("outdial.api")

# The body as JSON values: each item is then read as the single accept reads its body.
_ITEMS = TypeAdapter(list[Any])


def _item_body(item: Any) -> CallCreate:
    """The item as `POST /v1/api/call` would read it as a body: the same parser on the same
    JSON (NaN and Infinity kept as the literals it was sent with), the same size bound."""
    raw = to_json(item, inf_nan_mode="constants")
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(
            413, "PAYLOAD_TOO_LARGE", "request body is too large", {"limitBytes": MAX_BODY_BYTES}
        )
    try:
        return CallCreate.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from exc


def _agent_id(item: Any) -> str | None:
    """The agent an item names, if it can be one (it names a key to read)."""
    agent = item.get("call_agent_id") if isinstance(item, dict) else None
    return agent if isinstance(agent, str) and is_valid_id(agent) else None


def _check_count(items: list[Any]) -> None:
    if len(items) > MAX_BATCH_CALLS:
        raise ApiError(
            413,
            "PAYLOAD_TOO_LARGE",
            f"at most {MAX_BATCH_CALLS} calls in a batch",
            {"count": len(items), "maxCalls": MAX_BATCH_CALLS},
        )
    if not items:
        raise ApiError(422, "VALIDATION_ERROR", "a batch holds at least one call")


def batch_fingerprint(items: list[Any]) -> str:
    """The batch's content, whatever its whitespace and key order."""
    canonical = json.dumps(items, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _storage_refusal() -> ApiError:
    """An item whose script Redis answered with an error (it wrote nothing): as the 503 a
    single accept would hear."""
    return ApiError(503, "SERVICE_UNAVAILABLE", "storage is unavailable, retry later")


async def place_calls(
    store: Store,
    settings: Settings,
    creds: Credentials,
    raw_body: bytes,
    batch_key: str | None,
) -> dict[str, Any]:
    """Accept a batch of calls; the answer holds every item's result (`CallBatchAccepted`).

    As `place_call`: the body is parsed before the one read (its agent ids name keys) but
    refused only after the credentials were checked.
    """
    try:
        items: list[Any] | None = _ITEMS.validate_json(raw_body)
    except ValidationError as exc:
        items, invalid_body = None, validation_error(exc.errors())
    readable = items is not None and 0 < len(items) <= MAX_BATCH_CALLS
    agent_ids = sorted({a for a in map(_agent_id, items or ()) if a}) if readable else None
    key_hash = creds.key_hash
    count = len(items) if items is not None else 0
    reads = await read_for_batch(
        store, creds.workspace_id, key_hash, agent_ids, batch_key, count, creds.kind
    )
    workspace = authorize(reads.authentication, key_hash)
    if items is None:
        raise invalid_body
    _check_count(items)
    check_idempotency_key(batch_key)
    fingerprint = batch_fingerprint(items) if batch_key else None
    if reads.previous is not None:
        return replay(reads.previous, fingerprint)
    previous_items = reads.previous_items or [None] * len(items)
    for previous in previous_items:
        # An item's record from another body: the key was used for another batch (409).
        if previous is not None:
            replay(previous, fingerprint)

    context = AcceptContext(
        workspace,
        reads.numbers,
        reads.assigned_trunks,
        CallbackUrlChecks(settings.callback_allow_private),
    )
    batch = _Batch(results=[{} for _ in items], fingerprint=fingerprint)
    bodies: dict[int, CallCreate] = {}
    for index, (item, previous) in enumerate(zip(items, previous_items, strict=True)):
        if previous is not None:  # accepted by an earlier request with this key
            batch.accepted(index, previous["response"])
            continue
        try:
            bodies[index] = _item_body(item)
        except ApiError as exc:
            batch.refused(index, exc)
    await context.callbacks.check_all({b.callback_url for b in bodies.values() if b.callback_url})
    writes: list[tuple[int, AcceptWrite]] = []
    for index, body in bodies.items():
        key = item_idempotency_key(batch_key, index) if batch_key else None
        agent = reads.agents.get(body.call_agent_id)
        try:
            write = await prepare_call(store, settings, body, agent, context, key, fingerprint)
        except ApiError as exc:
            batch.refused(index, exc)
            continue
        writes.append((index, write))
    await batch.write(store, writes, workspace.id)

    answer = batch.answer()
    # A batch whose every result is final is kept for its retries; one with an item Redis
    # refused is not, so a retry with the key places that item (and replays the others).
    if batch_key and fingerprint is not None and not batch.retryable:
        await save_batch_answer(store, workspace.id, batch_key, fingerprint, answer)
    return answer


@dataclass
class _Batch:
    """The items' results as they are decided, in the items' order."""

    results: list[dict[str, Any]]
    fingerprint: str | None
    # An item Redis refused with an error reply: a retry may place it.
    retryable: bool = False

    def accepted(self, index: int, answer: dict[str, Any]) -> None:
        self.results[index] = {"index": index} | answer

    def refused(self, index: int, error: ApiError) -> None:
        self.results[index] = {
            "index": index,
            "status": "error",
            "httpStatus": error.status,
            "code": error.code,
            "message": error.message,
            "details": error.details,
        }

    async def write(
        self, store: Store, writes: list[tuple[int, AcceptWrite]], workspace_id: str
    ) -> None:
        """Run the checked items' accepts (one round trip) and record what each became."""
        outcomes = await run_accepts(store, [write for _, write in writes])
        for (index, write), outcome in zip(writes, outcomes, strict=True):
            if isinstance(outcome, ResponseError):
                logger.error("redis refused a batch item's accept: %s", outcome)
                self.refused(index, _storage_refusal())
                self.retryable = True
                continue
            try:
                self.accepted(
                    index, accepted_answer(write, outcome, self.fingerprint, workspace_id)
                )
            except ApiError as exc:
                self.refused(index, exc)

    def answer(self) -> dict[str, Any]:
        accepted = sum(result["status"] == "success" for result in self.results)
        return {
            "status": "success",
            "accepted": accepted,
            "refused": len(self.results) - accepted,
            "results": self.results,
        }
