"""Acting on the phone leg through LiveKit's server API: hang up and transfer.

Hanging up deletes the room: that disconnects the SIP participant, so the SIP bridge
sends BYE and the phone really drops (leaving the room alone would not).

A transfer reaches LiveKit at most once. The job's client (`ctx.api`) is built with
livekit-api's default `failover=True`, which on LiveKit Cloud replays a request that got a
5xx or a transport error; each TransferSIPParticipant that arrives sends a SIP REFER, so a
replay could transfer the callee again. Transfers therefore go through a `failover=False`
twin of that client (same URL, credentials and aiohttp session), made on the first
transfer. DeleteRoom is idempotent and keeps the job's client.
"""

from __future__ import annotations

import logging
import re

from livekit import api

from sip import RetryPolicy, delete_room

logger = logging.getLogger("outdial.agent.telephony")
_HANG_UP_RETRIES = RetryPolicy(attempts=3, first_delay=0.2, max_delay=1.0)
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


class CallControl:
    """Server-side actions on one call's room and SIP participant; `aclose()` at call end."""

    def __init__(self, lkapi: api.LiveKitAPI, room_name: str, sip_identity: str) -> None:
        self._api = lkapi
        self._single_shot: api.LiveKitAPI | None = None
        self._room_name = room_name
        self._sip_identity = sip_identity

    async def hang_up(self) -> None:
        """Delete the room: idempotent (a room already gone is fine), so transient errors
        are retried; a callee must not stay on a line nobody watches."""
        await delete_room(self._api, self._room_name, _HANG_UP_RETRIES)

    async def transfer(self, transfer_to: str) -> None:
        """Cold-transfer the callee (SIP REFER), sent once; raises if LiveKit refuses or the
        outcome is unknown (5xx, transport error): then the REFER may or may not be out."""
        await self._single_shot_api().sip.transfer_sip_participant(
            api.TransferSIPParticipantRequest(
                room_name=self._room_name,
                participant_identity=self._sip_identity,
                transfer_to=sip_transfer_uri(transfer_to),
                play_dialtone=False,
            )
        )

    async def aclose(self) -> None:
        """Release the transfer client, if one was made; the job's client is not ours."""
        client, self._single_shot = self._single_shot, None
        if client is not None:
            await client.aclose()

    def _single_shot_api(self) -> api.LiveKitAPI:
        if self._single_shot is None:
            self._single_shot = single_shot_twin(self._api)
        return self._single_shot


def single_shot_twin(client: api.LiveKitAPI) -> api.LiveKitAPI:
    """A `failover=False` client for the same server and credentials, on the same session.

    livekit-api (checked on 1.2.2) exposes the key and secret on each service but keeps the
    URL, session and pre-signed token private; tests/test_livekit_failover.py fails if a
    release moves them. Sharing the session keeps one connection pool per job and makes the
    twin's `aclose()` leave the session to its owner.
    """
    service = client.sip
    url = service._client.host
    session = client._session
    if service._token:
        return api.LiveKitAPI.with_token(service._token, url, session=session, failover=False)
    return api.LiveKitAPI(url, service.api_key, service.api_secret, session=session, failover=False)


def sip_transfer_uri(destination: str) -> str:
    """`+15551234567` -> `tel:+15551234567`; a `sip:` URI passes through; anything else is
    refused (ValueError). The API already allowlisted the agent's `sip:` domains when it
    stored `transfer_to`; the worker has no API settings, so it checks only the form."""
    if destination.startswith("sip:"):
        return destination
    if _E164.fullmatch(destination):
        return f"tel:{destination}"
    raise ValueError(f"transfer target {destination!r} is neither an E.164 number nor a sip: URI")
