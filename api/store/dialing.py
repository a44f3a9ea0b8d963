"""What the dial step records outside the event log: the SIP ids LiveKit gave the leg.

Invariant: the ids are written in one step with reading the call's status, and only onto a
call that still exists (a call whose record expired is not brought back as a stub without
retention). The status tells the dial step whether the call ended while its dial request
was in flight.
"""

from __future__ import annotations

from typing import cast

from api.store.base import Store

# KEYS: call. ARGV: sip_call_id, sip_participant_id. Returns the status, or nil (no call).
_RECORD_DIALED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'sip_call_id', ARGV[1], 'sip_participant_id', ARGV[2])
return redis.call('HGET', KEYS[1], 'status')
"""


async def record_dialed(
    store: Store, call_id: str, sip_call_id: str, sip_participant_id: str
) -> str | None:
    """Store the leg's SIP ids on the call; the call's status afterwards (None: gone)."""
    # Registered per use, like the number scripts: one call per dial, not a hot loop.
    script = store.redis.register_script(_RECORD_DIALED)
    status = await script(keys=[store.keys.call(call_id)], args=[sip_call_id, sip_participant_id])
    return cast(str | None, status)
