"""Outbound trunks created through LiveKit's SIP API for numbers registered with a trunk spec.

Invariant: a trunk Outdial creates points at a public host (`check_trunk_host`): LiveKit SIP
sends INVITEs, with the trunk's credentials, to whatever address a workspace names, so an
internal one would let a workspace reach the operator's network. An operator who does want a
trunk on an internal host creates it at LiveKit and assigns its id to the workspace.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from livekit import api as lkapi
from livekit.protocol.sip import (
    CreateSIPOutboundTrunkRequest,
    DeleteSIPTrunkRequest,
    SIPOutboundTrunkInfo,
    SIPTransport,
)

_TRANSPORTS: dict[str, SIPTransport] = {
    "auto": SIPTransport.SIP_TRANSPORT_AUTO,
    "udp": SIPTransport.SIP_TRANSPORT_UDP,
    "tcp": SIPTransport.SIP_TRANSPORT_TCP,
    "tls": SIPTransport.SIP_TRANSPORT_TLS,
}


_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
# A top-level domain is letters (or an IDN's xn-- form), never digits: that also keeps out
# shorthand IPv4 forms resolvers accept ("127.1", "10.0x1").
_TOP_LEVEL = re.compile(r"([a-z]{2,63}|xn--[a-z0-9-]{1,59})\Z")
# Special-use and customary private suffixes: they name hosts inside some network, not a
# carrier's (RFC 6761 localhost/invalid/test/example, RFC 6762 local, RFC 8375 home.arpa,
# ICANN's reserved internal, and the usual intranet names).
_PRIVATE_SUFFIXES = (
    "localhost",
    "local",
    "internal",
    "intranet",
    "lan",
    "corp",
    "private",
    "localdomain",
    "home.arpa",
    "arpa",
    "invalid",
    "test",
)


def check_trunk_host(address: str) -> None:
    """Refuse (ValueError, saying why) a trunk `host[:port]` that is not a public host.

    By form only: a name is resolved by LiveKit SIP at every dial, so a lookup here would
    prove nothing about later ones (keep SIP's egress to private ranges closed, see
    docs/deploy.md).
    """
    host = address.split(":", 1)[0].lower().removesuffix(".")
    try:
        ip = ipaddress.IPv4Address(host)
    except ValueError:
        ip = None
    if ip is not None:
        if not ip.is_global or ip.is_multicast:
            raise ValueError(f"trunk address {host} is not a public address")
        return
    labels = host.split(".")
    if len(labels) < 2:
        raise ValueError(
            f"trunk address {host!r} is a single-label name: give the carrier's full host name"
        )
    if not all(_LABEL.match(label) for label in labels) or not _TOP_LEVEL.match(labels[-1]):
        raise ValueError(f"trunk address {host!r} is not a valid public host name")
    for suffix in _PRIVATE_SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            raise ValueError(f"trunk address {host!r} names a private or special-use host")


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
    api/livekit.py (`Resources.single_shot_livekit`).
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
