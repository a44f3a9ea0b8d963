"""Dramatiq's message layout, written straight into Redis by the store's atomic scripts.

The Redis broker stores a message as HSET `<ns>:<queue>.msgs` id body + RPUSH `<ns>:<queue>` id,
with the id in `options.redis_message_id`. Writing that layout inside a Lua script lets the
call record and its message appear together or not at all. The layout is Dramatiq's
private one: `dramatiq` is pinned to the minor series it was checked against (pyproject.toml),
and `tests/test_message_layout.py` has a real worker of the installed version consume every
message the store writes. The queue and actor names live here, with the layout; the
actors in `api.jobs` take them from here.

Every write of a message is followed, in the same step, by `PUBLISH <ns>:<queue> ''`: a
queue's wake-up channel is named like its list (`QueueKeys.ids`), and an idle worker waits
for it instead of polling (`api.jobs.wakeup`). `tests/test_wakeup_publish.py` fails when a
script writes a message without it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pydantic_core import to_json

from api.store.uuids import uuid4_text

DIAL_QUEUE = "outdial.dial"
# Deadlines are checked on their own queue: a dial backlog must not delay them (nor they it).
RECONCILE_QUEUE = "outdial.reconcile"
RELAY_QUEUE = "outdial.relay"
DISPATCH_ACTOR = "dispatch_call"
DIAL_ACTOR = "dial_call"
RECONCILE_ACTOR = "reconcile_call"
RELAY_ACTOR = "relay_call"
REDELIVER_ACTOR = "relay_redeliver"


@dataclass(frozen=True, slots=True)
class EncodedMessage:
    message_id: str
    body: str


@dataclass(frozen=True, slots=True)
class QueueKeys:
    messages: str
    ids: str

    @classmethod
    def of(cls, namespace: str, queue_name: str) -> QueueKeys:
        return cls(messages=f"{namespace}:{queue_name}.msgs", ids=f"{namespace}:{queue_name}")


def heartbeats_key(namespace: str) -> str:
    """Dramatiq's sorted set of broker ids, each scored by the ms of its last broker command:
    a worker whose score is older than the heartbeat timeout is dead."""
    return f"{namespace}:__heartbeats__"


def _message_body(
    queue_name: str, actor_name: str, args: tuple[str, ...], message_id: str, timestamp: int
) -> str:
    # Exactly the fields of `dramatiq.Message`, which the broker decodes back into one.
    return to_json(
        {
            "queue_name": queue_name,
            "actor_name": actor_name,
            "args": args,
            "kwargs": {},
            "options": {"redis_message_id": message_id},
            "message_id": message_id,
            "message_timestamp": timestamp,
        }
    ).decode()


def encode_message(queue_name: str, actor_name: str, *args: str) -> EncodedMessage:
    message_id = uuid4_text()
    body = _message_body(queue_name, actor_name, args, message_id, int(time.time() * 1000))
    return EncodedMessage(message_id, body)


def message_template(queue_name: str, actor_name: str, *, with_claim: bool = False) -> str:
    """A message body whose call id and message id (and, `with_claim`, the claim's lease
    score as a second argument) are filled in by Lua."""
    args = ("@@CALL@@", "@@CLAIM@@") if with_claim else ("@@CALL@@",)
    return _message_body(queue_name, actor_name, args, "@@MSG@@", 0)
