"""What the dial step records outside the event log: the SIP ids LiveKit gave the leg, and
when the dial request left (`dial_sent_at`: the trunk's view of the pacing).

Invariant: the ids are written in one step with reading the call's status, and only onto a
call that still exists (a call whose record expired is not brought back as a stub without
retention). The status tells the dial step whether the call ended while its dial request
was in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from redis import exceptions as redis_errors

from api.store.base import Store
from api.store.scripts import Key, ScriptCall


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordDialed(ScriptCall):
    NAME = "record_dialed"
    call: Key
    sip_call_id: str
    sip_participant_id: str
    dial_sent_at_ms: int


async def record_dialed(
    store: Store, call_id: str, sip_call_id: str, sip_participant_id: str, sent_at_ms: int
) -> str | None:
    """Store the leg's SIP ids and when its dial request left on the call; the call's
    status afterwards (None: gone). Sent a second time after a lost connection: the leg is
    up by now, and a retry of the dial step would find it without its ids; writing the same
    ids twice is harmless."""
    step = RecordDialed(
        call=store.keys.call(call_id),
        sip_call_id=sip_call_id,
        sip_participant_id=sip_participant_id,
        dial_sent_at_ms=sent_at_ms,
    )
    try:
        status = await store.run(step)
    except (redis_errors.ConnectionError, redis_errors.TimeoutError):
        status = await store.run(step)
    return cast(str | None, status)
