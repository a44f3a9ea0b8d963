"""What the dial step records outside the event log: the SIP ids LiveKit gave the leg, and
when the dial request left (`dial_sent_at`: the trunk's view of the pacing).

Invariant: the ids are written in one step with reading the call's status, and only onto a
call that still exists (a call whose record expired is not brought back as a stub without
retention). The status tells the dial step whether the call ended while its dial request
was in flight.
"""

from __future__ import annotations

from typing import cast

from api.store.base import Store

# KEYS: call. ARGV: sip_call_id, sip_participant_id, dial_sent_at (ms). Returns the status,
# or nil (no call).
_RECORD_DIALED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'sip_call_id', ARGV[1], 'sip_participant_id', ARGV[2],
           'dial_sent_at', ARGV[3])
return redis.call('HGET', KEYS[1], 'status')
"""


async def record_dialed(
    store: Store, call_id: str, sip_call_id: str, sip_participant_id: str, sent_at_ms: int
) -> str | None:
    """Store the leg's SIP ids and when its dial request left on the call; the call's
    status afterwards (None: gone)."""
    # Registered per use, like the number scripts: one call per dial, not a hot loop.
    script = store.redis.register_script(_RECORD_DIALED)
    status = await script(
        keys=[store.keys.call(call_id)], args=[sip_call_id, sip_participant_id, sent_at_ms]
    )
    return cast(str | None, status)
