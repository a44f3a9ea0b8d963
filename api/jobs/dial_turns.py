"""A dial's turn on its trunk, from the dial step's side.

Invariant: a dial step marks its call `dialing` (and so sends the dial) only through
`mark_dialing_in_turn`, which applies the mark only when the trunk's rules allow it now
(`api.store.pacing.mark_dialing`); a step that holds a turn further off hands it, with the
turn, to a step sent to arrive just before it, and ends. No thread sleeps longer than
`SLEEP_TO_TURN_MS` for a turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from api.store.base import Store
from api.store.clock import now_ms
from api.store.events import EventSpec
from api.store.pacing import PacedDial, mark_dialing

# A step sleeps to a reserved turn this close; a later turn is left to a step sent to
# arrive `SENT_AHEAD_MS` before it (a delayed message may come some ms late).
SLEEP_TO_TURN_MS = 150
SENT_AHEAD_MS = 80
# A reserved turn may still be held by the trunk's window a few times (dials ahead of it
# that left late); past this the step hands the dial to a later one.
MAX_TURN_WAITS = 8

# Sends the dial step again: (reserved turn ms, delay ms).
Resend = Callable[[int, int], Awaitable[None]]


async def mark_dialing_in_turn(
    store: Store, call_id: str, event: EventSpec, reserved: int | None, resend: Resend
) -> PacedDial | None:
    """`event` applied at the trunk's dial turn this step holds (`reserved`) or reserves;
    None when the turn was handed to a later step (`resend`)."""
    for _ in range(MAX_TURN_WAITS):
        paced = await mark_dialing(store, call_id, event, reserved)
        if paced.result is not None:
            return paced
        reserved = paced.turn_ms
        wait_ms = reserved - now_ms()
        if wait_ms > SLEEP_TO_TURN_MS:
            await resend(reserved, wait_ms - SENT_AHEAD_MS)
            return None
        await asyncio.sleep(max(0, wait_ms) / 1000)
    await resend(paced.turn_ms, SENT_AHEAD_MS)
    return None
