"""Outbound trunks created through LiveKit's SIP API for numbers registered with a trunk spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from livekit import api as lkapi
from livekit.protocol.sip import (
    CreateSIPOutboundTrunkRequest,
    DeleteSIPTrunkRequest,
    SIPOutboundTrunkInfo,
    SIPTransport,
)

_TRANSPORTS: dict[str, int] = {
    "auto": SIPTransport.SIP_TRANSPORT_AUTO,
    "udp": SIPTransport.SIP_TRANSPORT_UDP,
    "tcp": SIPTransport.SIP_TRANSPORT_TCP,
    "tls": SIPTransport.SIP_TRANSPORT_TLS,
}


@dataclass(frozen=True, slots=True)
class TrunkSettings:
    address: str
    transport: Literal["auto", "udp", "tcp", "tls"] = "auto"
    auth_username: str | None = None
    auth_password: str | None = None


async def create_outbound_trunk(
    client: lkapi.LiveKitAPI, number: str, trunk: TrunkSettings, name: str
) -> str:
    """Create a trunk that may present `number` as caller id; returns its `ST_...` id.

    Not idempotent (every request creates a trunk): pass a `failover=False` client, see
    api/livekit.py `single_shot_livekit_client`.
    """
    info = SIPOutboundTrunkInfo(
        name=name,
        address=trunk.address,
        transport=_TRANSPORTS[trunk.transport],
        numbers=[number],
        auth_username=trunk.auth_username or "",
        auth_password=trunk.auth_password or "",
    )
    created = await client.sip.create_outbound_trunk(CreateSIPOutboundTrunkRequest(trunk=info))
    return created.sip_trunk_id


async def delete_trunk(client: lkapi.LiveKitAPI, trunk_id: str) -> None:
    try:
        await client.sip.delete_trunk(DeleteSIPTrunkRequest(sip_trunk_id=trunk_id))
    except lkapi.ServerError as error:
        if error.code != "not_found":
            raise
