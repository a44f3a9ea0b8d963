"""Test-side control of rooms and participants, signed webhooks and call scenarios.

Kept apart from server.py (lifecycle, requests, faults, jobs) to keep both small; it is a
mixin of LiveKitTestServer and uses its state, agent hub and loop helpers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiohttp
from livekit.protocol import models
from livekit.protocol.sip import SIPOutboundTrunkInfo

from . import rpcs
from . import webhooks as wh
from .agent_ws import AgentHub
from .state import RoomState, SentWebhook, ServerState, clone, new_id

T = TypeVar("T")


class ControlMixin:
    """Test-facing controls of LiveKitTestServer; `_call`/`_acall` are the server's own."""

    api_key: str
    api_secret: str
    webhook_url: str | None
    _state: ServerState
    _hub: AgentHub
    _session: aiohttp.ClientSession | None

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30) -> T:
        raise NotImplementedError

    async def _acall(self, coro: Coroutine[Any, Any, T]) -> T:
        raise NotImplementedError

    # -- direct state changes ------------------------------------------------------------------

    def add_trunk(
        self,
        numbers: list[str] | None = None,
        *,
        name: str = "test-trunk",
        address: str = "sip.example.test",
    ) -> SIPOutboundTrunkInfo:
        """Create an outbound trunk without an RPC (same result as CreateSIPOutboundTrunk)."""
        trunk = SIPOutboundTrunkInfo(name=name, address=address, numbers=numbers or ["+15550100"])
        trunk.sip_trunk_id = new_id("ST_")
        trunk.created_at.GetCurrentTime()
        with self._state.cond:
            self._state.trunks[trunk.sip_trunk_id] = trunk
        return clone(trunk)

    def add_sip_participant(
        self,
        room_name: str,
        identity: str,
        *,
        phone_number: str = "+15550199",
        trunk_number: str = "+15550100",
        trunk_id: str = "",
        name: str = "",
        metadata: str = "",
        attributes: dict[str, str] | None = None,
    ) -> models.ParticipantInfo:
        """Join a SIP participant as CreateSIPParticipant would (creating the room if needed),
        for webhook tests that have no dispatcher."""
        info = rpcs.sip_participant_info(
            identity=identity,
            name=name,
            metadata=metadata,
            attributes=attributes or {},
            call_to=phone_number,
            number=trunk_number,
            trunk_id=trunk_id,
            hostname="sip.example.test",
        )
        rpcs.add_sip_participant(self._state, room_name, info)
        return clone(info)

    def add_agent_participant(self, room_name: str, identity: str) -> models.ParticipantInfo:
        """Join an agent participant (kind AGENT) as a worker's job would, without media."""
        info = models.ParticipantInfo(
            sid=f"PA_{identity}",
            identity=identity,
            state=models.ParticipantInfo.ACTIVE,
            kind=models.ParticipantInfo.Kind.AGENT,
            attributes={"lk.agent.name": "outdial-agent"},
        )
        rpcs.add_sip_participant(self._state, room_name, info)
        return clone(info)

    def set_participant(
        self,
        room_name: str,
        identity: str,
        *,
        call_status: str | None = None,
        disconnect_reason: int | None = None,
        sip_status_code: str | None = None,
        sip_status: str | None = None,
        attributes: dict[str, str] | None = None,
        remove: bool = False,
    ) -> models.ParticipantInfo:
        """Change a participant as the SIP bridge would: ``call_status`` sets the
        sip.callStatus attribute, ``disconnect_reason`` is a models.DisconnectReason value,
        ``remove`` makes it leave (kept as departed so webhooks can still describe it).
        sip_status_code / sip_status are recorded in RoomState.sip_status only: the real
        server never exposes them on the participant or in webhooks."""
        with self._state.cond:
            room = self._state.rooms.get(room_name)
            info = room.participants.get(identity) if room else None
            if room is None or info is None:
                raise KeyError(f"no participant {identity!r} in room {room_name!r}")
            if call_status is not None:
                info.attributes["sip.callStatus"] = call_status
            for key, value in (attributes or {}).items():
                info.attributes[key] = value
            if disconnect_reason is not None:
                info.disconnect_reason = disconnect_reason  # type: ignore[assignment]
            if sip_status_code is not None or sip_status is not None:
                room.sip_status[identity] = (sip_status_code or "", sip_status or "")
            if remove:
                self._state._depart(room, identity, models.DisconnectReason.CLIENT_INITIATED)
            self._state.cond.notify_all()
            return clone(info)

    def webhooks(self) -> list[SentWebhook]:
        """Every webhook sent so far (body, auth header, answer)."""
        with self._state.cond:
            return list(self._state.webhooks)

    # -- webhooks ------------------------------------------------------------------------------

    def send_webhook(
        self,
        event: str,
        room_name: str,
        participant_identity: str | None = None,
        *,
        event_id: str | None = None,
        forge: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[int, str]:
        """POST one signed webhook to ``webhook_url``; returns (HTTP status, response text).
        ``forge``: bad_signature, altered_body, stale, unknown_key or missing_auth."""
        coro = self._send(event, room_name, participant_identity, event_id, forge, extra)
        return self._call(coro)

    async def send_webhook_async(
        self,
        event: str,
        room_name: str,
        participant_identity: str | None = None,
        *,
        event_id: str | None = None,
        forge: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[int, str]:
        coro = self._send(event, room_name, participant_identity, event_id, forge, extra)
        return await self._acall(coro)

    async def _send(
        self,
        event: str,
        room_name: str,
        identity: str | None,
        event_id: str | None,
        forge: str | None,
        extra: dict[str, Any] | None,
        track: models.TrackInfo | None = None,
    ) -> tuple[int, str]:
        url = self.webhook_url
        if not url:
            raise RuntimeError("set server.webhook_url before sending webhooks")
        room = self._state.lookup_room(room_name)
        participant = None
        if identity is not None:
            participant = _find_participant(room, identity)
            if participant is None:
                raise KeyError(
                    f"no participant {identity!r} (present or departed) in {room_name!r}"
                )
        elif event in wh.PARTICIPANT_EVENTS:
            raise ValueError(f"{event} needs a participant_identity")
        ev = wh.build_event(event, room, room_name, participant, track=track, event_id=event_id)
        body, auth = wh.sign(wh.serialize(ev, extra), self.api_key, self.api_secret, forge=forge)
        assert self._session is not None
        status, text = await wh.post(self._session, url, body, auth)
        sent = SentWebhook(event, room_name, body, auth or "", status, text, time.time(), forge)
        with self._state.cond:
            self._state.webhooks.append(sent)
            self._state.cond.notify_all()
        return status, text

    # -- scenarios -----------------------------------------------------------------------------

    def play_scenario(
        self,
        room_name: str,
        scenario: str,
        *,
        identity: str | None = None,
        delay: float = 0.0,
        room_started: bool = False,
    ) -> list[tuple[str, int]]:
        """Send the webhooks livekit-server sends for an outbound SIP call ending this way
        (sequences and sources in webhooks.SCENARIOS), changing state along the way.
        ``identity`` defaults to the room's first SIP participant; ``delay`` is the pause
        between two webhooks; ``room_started`` prepends room_started. Returns
        [(event, HTTP status)]."""
        return self._call(self._play(room_name, scenario, identity, delay, room_started), None)

    async def play_scenario_async(
        self,
        room_name: str,
        scenario: str,
        *,
        identity: str | None = None,
        delay: float = 0.0,
        room_started: bool = False,
    ) -> list[tuple[str, int]]:
        return await self._acall(self._play(room_name, scenario, identity, delay, room_started))

    async def _play(
        self, room_name: str, scenario: str, identity: str | None, delay: float, started: bool
    ) -> list[tuple[str, int]]:
        if scenario not in wh.SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {sorted(wh.SCENARIOS)}")
        steps = wh.SCENARIOS[scenario]
        if started:
            steps = (wh.Step("room_started"), *steps)
        needs_sip = any(s.event in wh.PARTICIPANT_EVENTS for s in steps)
        with self._state.cond:
            room = self._state.rooms.get(room_name)
            if room is None:
                raise KeyError(f"no room {room_name!r}; create it (and dial) first")
            identity = identity or _first_sip(room)
            if needs_sip and (identity is None or identity not in room.participants):
                raise KeyError(
                    f"no SIP participant {identity or ''!r} in room {room_name!r}; call "
                    "CreateSIPParticipant or server.add_sip_participant first"
                )
        sent: list[tuple[str, int]] = []
        for step in steps:
            track = self._apply_step(room_name, identity, step)
            if step.finish_room:
                await self._hub.terminate(self._end_room(room_name))
            if step.event is None:
                continue
            if sent and delay > 0:
                await asyncio.sleep(delay)
            who = identity if step.event in wh.PARTICIPANT_EVENTS else None
            status, _ = await self._send(step.event, room_name, who, None, None, None, track)
            sent.append((step.event, status))
        return sent

    def _apply_step(
        self, room_name: str, identity: str | None, step: wh.Step
    ) -> models.TrackInfo | None:
        if identity is None or step.finish_room or step.event == "room_started":
            return None
        track = None
        if step.publish_track:
            track = wh.new_audio_track()
            with self._state.cond:
                room = self._state.rooms.get(room_name)
                if room and identity in room.participants:
                    room.participants[identity].tracks.append(track)
        if (
            any(
                v is not None
                for v in (step.call_status, step.disconnect_reason, step.sip_status_code)
            )
            or step.remove
        ):
            self.set_participant(
                room_name,
                identity,
                call_status=step.call_status,
                disconnect_reason=step.disconnect_reason,
                sip_status_code=step.sip_status_code,
                sip_status=step.sip_status,
                remove=step.remove,
            )
        return track

    def _end_room(self, room_name: str) -> list:
        """Close the room like the server does once it is empty; its jobs end."""
        with self._state.cond:
            self._state._close_room(room_name, models.DisconnectReason.ROOM_CLOSED)
            ended = [
                j
                for j in self._state.jobs.values()
                if j.room_name == room_name and not j.terminated
            ]
            for job in ended:
                job.terminated = True
            self._state.cond.notify_all()
            return [j.copy() for j in ended]


def _first_sip(room: RoomState) -> str | None:
    for identity, info in room.participants.items():
        if info.kind == models.ParticipantInfo.SIP:
            return identity
    return None


def _find_participant(room: RoomState | None, identity: str) -> models.ParticipantInfo | None:
    if room is None:
        return None
    return room.participants.get(identity) or room.departed.get(identity)
