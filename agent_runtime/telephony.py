"""Acting on the phone leg through LiveKit's server API: hang up and transfer.

Hanging up deletes the room: that disconnects the SIP participant, so the SIP bridge
sends BYE and the phone really drops (leaving the room alone would not).
"""

from __future__ import annotations

import logging

from livekit import api

logger = logging.getLogger("outdial.agent.telephony")


class CallControl:
    """Server-side actions on one call's room and SIP participant."""

    def __init__(self, lkapi: api.LiveKitAPI, room_name: str, sip_identity: str) -> None:
        self._api = lkapi
        self._room_name = room_name
        self._sip_identity = sip_identity

    async def hang_up(self) -> None:
        """Delete the room (idempotent: a room that is already gone is fine)."""
        try:
            await self._api.room.delete_room(api.DeleteRoomRequest(room=self._room_name))
        except api.TwirpError as exc:
            if exc.code != api.TwirpErrorCode.NOT_FOUND:
                raise

    async def transfer(self, transfer_to: str) -> None:
        """Cold-transfer the callee (SIP REFER); raises if LiveKit refuses."""
        await self._api.sip.transfer_sip_participant(
            api.TransferSIPParticipantRequest(
                room_name=self._room_name,
                participant_identity=self._sip_identity,
                transfer_to=sip_transfer_uri(transfer_to),
                play_dialtone=False,
            )
        )


def sip_transfer_uri(destination: str) -> str:
    """`+15551234567` -> `tel:+15551234567`; `sip:`/`tel:` URIs pass through."""
    if destination.startswith(("sip:", "sips:", "tel:")):
        return destination
    return f"tel:{destination}"
