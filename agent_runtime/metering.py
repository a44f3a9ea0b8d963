"""Keeping a metered call's minutes: the agent asks the API for one more minute a little
before the ones its call holds run out, and ends the call politely when it gets none.

Invariant: the call never runs past its reservation on the agent's say-so alone: either
the API granted more (`granted`, the new total from the answer on), or the agent ends the
call (`balance_exhausted`). An API it cannot reach, or whose answer it cannot read, is
asked again every `RETRY_SECONDS`; the balance stays safe meanwhile, since the API never
bills a call past what it reserved (`settle_call`, `api/store/lua/lib/settle.lua`). Once the
reservation has run out by `UNCONFIRMED_GRACE_SECONDS` with still no answer, the call's
minutes cannot be confirmed and the agent ends it (`balance_exhausted`) rather than let it
run on unpaid.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from .contract import Metering

logger = logging.getLogger("outdial.agent.metering")

RETRY_SECONDS = 3.0
REQUEST_TIMEOUT_SECONDS = 5.0
# How long a call may run past its reservation while the API does not answer: a restart
# of the API fits in it, an outage does not.
UNCONFIRMED_GRACE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Grant:
    granted: bool
    reserved_seconds: int


async def ask_for_minute(
    session: aiohttp.ClientSession, url: str, token: str, held_seconds: int
) -> Grant | None:
    """One ask (`POST /v1/internal/calls/{id}/reservation`), naming what the call holds so
    that asking again after a lost answer takes nothing twice; None when there is no answer
    to act on (unreachable, not a 200, a body without a boolean `granted` and a whole
    `reservedSeconds`)."""
    headers = {"Authorization": f"Bearer {token}"}
    params = {"held_seconds": str(held_seconds)}
    try:
        async with session.post(url, headers=headers, params=params) as resp:
            if resp.status != 200:
                logger.warning("reservation refused by the API: %d", resp.status)
                return None
            body = await resp.json()
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        logger.warning("reservation request failed: %s", exc)
        return None
    try:
        granted, reserved = body["granted"], body["reservedSeconds"]
        # (bool is an int to Python: `true` is no number of seconds)
        if not isinstance(granted, bool) or type(reserved) is not int:
            raise TypeError("granted must be a boolean, reservedSeconds whole seconds")
    except (KeyError, TypeError) as exc:
        logger.warning("reservation answer not understood: %r", exc)
        return None
    return Grant(granted, reserved)


async def keep_reserved(
    metering: Metering,
    token: str,
    answered_at: float,
    lead_seconds: float,
    on_exhausted: Callable[[], object],
) -> None:
    """From the answer (`answered_at`, monotonic) until cancelled: ask `lead_seconds`
    before the reservation runs out; call `on_exhausted` once the API grants no more, or
    when no answer came by `UNCONFIRMED_GRACE_SECONDS` after the reservation ran out. A
    call that is not metered any more (0 reserved), or that holds its whole max duration
    (granted, nothing added), stops asking."""
    reserved = metering.reserved_seconds
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            await asyncio.sleep(max(answered_at + reserved - lead_seconds - time.monotonic(), 0))
            grant = await ask_for_minute(session, metering.reservation_url, token, reserved)
            while grant is None:
                left = answered_at + reserved + UNCONFIRMED_GRACE_SECONDS - time.monotonic()
                if left <= 0:
                    logger.warning(
                        "no reservation answer %ss past the reservation: ending the call",
                        UNCONFIRMED_GRACE_SECONDS,
                    )
                    on_exhausted()
                    return
                await asyncio.sleep(min(RETRY_SECONDS, left))
                grant = await ask_for_minute(session, metering.reservation_url, token, reserved)
            if not grant.granted:
                on_exhausted()
                return
            if grant.reserved_seconds <= reserved:
                return
            reserved = grant.reserved_seconds
