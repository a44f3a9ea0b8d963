"""The call's SIP leg as the agent sees it: joined, answered, gone.

Invariant: `SipLeg` subscribes to the room before it reads the room's current state, and
every observation (an event, or a look at `room.remote_participants`) goes through one
function. So a join, an answer or a departure is never lost between the two, whatever the
caller awaits meanwhile (building the agent, starting its session, reporting events).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

from livekit import rtc

from .outcome import (
    SIP_CALL_STATUS_ATTRIBUTE,
    CallOutcome,
    is_answered,
    left_after_answer_outcome,
    unanswered_outcome,
)

_EVENTS: Final = (
    "participant_connected",
    "participant_attributes_changed",
    "participant_disconnected",
)


class SipLeg:
    """Watches the participant `identity` of `room` from now until `close()`.

    `on_left` runs synchronously when the leg is seen gone, so whoever ends the call hears
    of it before any other task runs.
    """

    def __init__(
        self, room: rtc.Room, identity: str, on_left: Callable[[SipLeg], None] | None = None
    ) -> None:
        self._room = room
        self.identity = identity
        self._on_left = on_left
        self.participant: rtc.Participant | None = None
        self.answered_at: float | None = None
        self._joined = asyncio.Event()
        self._answered = asyncio.Event()
        self._left = asyncio.Event()
        for event in _EVENTS:
            room.on(event, self._on_event)
        self.sync()

    def close(self) -> None:
        for event in _EVENTS:
            self._room.off(event, self._on_event)

    @property
    def left(self) -> bool:
        return self._left.is_set()

    @property
    def attributes(self) -> dict[str, str]:
        return dict(self.participant.attributes) if self.participant else {}

    def sync(self) -> None:
        """Read the room's current state: the leg may have joined, changed or left."""
        present = self._room.remote_participants.get(self.identity)
        if present is not None:
            self.observe(present)
        elif self.participant is not None:
            self.observe(self.participant)

    def observe(self, participant: rtc.Participant) -> None:
        if participant.identity != self.identity or self.left:
            return
        self.participant = participant
        self._joined.set()
        if self.answered_at is None and is_answered(participant.attributes):
            self.answered_at = time.time()
            self._answered.set()
        # the room drops a participant before it reports it gone (and sets its reason)
        if participant.disconnect_reason or self.identity not in self._room.remote_participants:
            self._left.set()
            if self._on_left is not None:
                self._on_left(self)

    def _on_event(self, *args: object) -> None:
        # (participant) for joins and departures, (changed, participant) for attributes
        participant = args[-1]
        if isinstance(participant, rtc.Participant):
            self.observe(participant)

    async def wait_joined(self) -> None:
        await self._joined.wait()

    async def wait_until_answered(self, timeout: float) -> CallOutcome | None:
        """None once `sip.callStatus` is active (the only state in which the agent may
        speak); the unanswered outcome if the leg is gone first, or still not answered
        after `timeout`."""
        if not self._answered.is_set() and not self.left:
            waits = [asyncio.ensure_future(e.wait()) for e in (self._answered, self._left)]
            try:
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
        if self._answered.is_set():
            return None
        if self.left:
            return self.departure()
        # still ringing when our patience ran out: drop it as unanswered
        return unanswered_outcome(None, {SIP_CALL_STATUS_ATTRIBUTE: "ringing"})

    def departure(self) -> CallOutcome:
        """How the leg's leaving ends the call: unanswered by the SIP table, or the way an
        answered leg ended (the table the webhook path uses too)."""
        participant = self.participant
        reason = participant.disconnect_reason if participant else None
        if self.answered_at is None:
            return unanswered_outcome(reason, self.attributes)
        return left_after_answer_outcome(reason or 0)
