"""Dramatiq messages written straight into Redis by our own atomic scripts.

The Redis broker stores a message as HSET `<ns>:<queue>.msgs` id body + RPUSH `<ns>:<queue>` id,
with the id in `options.redis_message_id`. Writing that layout inside a Lua script lets the
call record and its message appear together or not at all.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import dramatiq

DIAL_QUEUE = "outdial.dial"
RELAY_QUEUE = "outdial.relay"
DISPATCH_ACTOR = "dispatch_call"
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


def encode_message(queue_name: str, actor_name: str, *args: str) -> EncodedMessage:
    message_id = str(uuid.uuid4())
    message = dramatiq.Message(
        queue_name=queue_name,
        actor_name=actor_name,
        args=args,
        kwargs={},
        options={"redis_message_id": message_id},
        message_id=message_id,
        message_timestamp=int(time.time() * 1000),
    )
    return EncodedMessage(message_id, message.encode().decode())


def relay_message_template() -> str:
    """A relay message body whose call id and message id are filled in by Lua."""
    message = dramatiq.Message(
        queue_name=RELAY_QUEUE,
        actor_name=RELAY_ACTOR,
        args=("@@CALL@@",),
        kwargs={},
        options={"redis_message_id": "@@MSG@@"},
        message_id="@@MSG@@",
        message_timestamp=0,
    )
    return message.encode().decode()
