"""Signed webhooks, built and signed the way livekit-server sends them, plus the webhook
sequences of an outbound SIP call.

Wire format (livekit/protocol webhook/url_notifier.go):
- body: protojson of livekit.WebhookEvent (lowerCamelCase names, int64 as strings, enums
  by name, unset fields omitted); here ``MessageToDict`` + compact ``json.dumps``.
- ``Authorization``: the bare JWT (no "Bearer "), HS256 with the API secret, issued by the
  API key, valid 5 minutes, claim ``sha256`` = base64(sha256(raw body)).
- ``Content-Type: application/webhook+json``, ``User-Agent: LiveKit``.
livekit.api.WebhookReceiver(TokenVerifier(key, secret)).receive(body, auth) accepts it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
from google.protobuf.json_format import MessageToDict
from livekit.protocol import models
from livekit.protocol.webhook import WebhookEvent

from .state import RoomState, new_id

CONTENT_TYPE = "application/webhook+json"
TOKEN_TTL = 300  # seconds, like SetValidFor(5 * time.Minute)
FORGERIES = ("bad_signature", "altered_body", "stale", "unknown_key", "missing_auth")

Reason = models.DisconnectReason
PARTICIPANT_EVENTS = (
    "participant_joined",
    "participant_left",
    "participant_connection_aborted",
    "track_published",
    "track_unpublished",
)


def build_event(
    event: str,
    room: RoomState | None,
    room_name: str,
    participant: models.ParticipantInfo | None = None,
    *,
    track: models.TrackInfo | None = None,
    event_id: str | None = None,
) -> WebhookEvent:
    ev = WebhookEvent(event=event, id=event_id or new_id("EV_"), created_at=int(time.time()))
    if room is not None:
        ev.room.CopyFrom(room.room)
    else:
        ev.room.name = room_name
    if participant is not None:
        ev.participant.CopyFrom(participant)
    if track is not None:
        ev.track.CopyFrom(track)
    return ev


def serialize(event: WebhookEvent, extra: dict[str, Any] | None = None) -> str:
    """Compact protojson. ``extra`` is merged into the top-level JSON object (before signing),
    e.g. to add fields a newer server might send."""
    data = MessageToDict(event)
    if extra:
        data.update(extra)
    return json.dumps(data, separators=(",", ":"))


def sign(
    body: str, api_key: str, api_secret: str, *, forge: str | None = None
) -> tuple[str, str | None]:
    """Return (body to send, Authorization header value or None), forged if asked."""
    if forge is not None and forge not in FORGERIES:
        raise ValueError(f"unknown forge {forge!r}; expected one of {FORGERIES}")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": api_key,
        "nbf": now,
        "iat": now,
        "exp": now + TOKEN_TTL,
        "sha256": base64.b64encode(hashlib.sha256(body.encode()).digest()).decode(),
    }
    secret = api_secret
    if forge == "bad_signature":
        secret = api_secret + "-not-the-secret"
    elif forge == "stale":
        # well past the 60 s leeway verifiers allow
        claims.update(nbf=now - 2 * TOKEN_TTL, iat=now - 2 * TOKEN_TTL, exp=now - TOKEN_TTL)
    elif forge == "unknown_key":
        claims["iss"] = api_key + "-unknown"
    token = jwt.encode(claims, secret, algorithm="HS256")
    if forge == "altered_body":
        data = json.loads(body)
        data["id"] = str(data.get("id", "")) + "-altered"
        body = json.dumps(data, separators=(",", ":"))
    if forge == "missing_auth":
        return body, None
    return body, token


async def post(
    session: aiohttp.ClientSession, url: str, body: str, auth: str | None
) -> tuple[int, str]:
    headers = {"Content-Type": CONTENT_TYPE, "User-Agent": "LiveKit"}
    if auth is not None:
        headers["Authorization"] = auth
    async with session.post(url, data=body.encode(), headers=headers) as resp:
        return resp.status, await resp.text()


def new_audio_track() -> models.TrackInfo:
    """The audio track the SIP bridge publishes as soon as it joins (before dialing)."""
    return models.TrackInfo(
        sid=new_id("TR_"),
        type=models.TrackType.AUDIO,
        source=models.TrackSource.MICROPHONE,
        mime_type="audio/opus",
    )


@dataclass(frozen=True)
class Step:
    """One step of a scenario: change the SIP participant / room, then send ``event``
    (None = state change only, which the real server does not report by webhook)."""

    event: str | None
    call_status: str | None = None
    disconnect_reason: int | None = None
    sip_status_code: str | None = None
    sip_status: str | None = None
    publish_track: bool = False
    remove: bool = False
    finish_room: bool = False


_JOIN = (
    # the SIP bridge joins the room first, with sip.callStatus=dialing, and publishes its
    # audio track right away (livekit/sip outbound.go connectToRoom), then sends the INVITE
    Step("participant_joined", call_status="dialing"),
    Step("track_published", publish_track=True),
)
_FINISH = Step("room_finished", finish_room=True)

# How livekit/sip ends each kind of outbound call (pkg/sip/outbound.go, errors.go,
# participant.go). Attribute changes (ringing, active) emit no webhook; the participant's
# last attributes and its disconnect_reason travel in participant_left.
SCENARIOS: dict[str, tuple[Step, ...]] = {
    # 180 Ringing -> 200 OK (callStatus active) -> callee hangs up (BYE): callStatus hangup,
    # left with CLIENT_INITIATED; the agent session closes, the room empties and ends.
    "answered_completed": (
        *_JOIN,
        Step(None, call_status="ringing"),
        Step(None, call_status="active"),
        Step(
            "participant_left",
            call_status="hangup",
            disconnect_reason=Reason.CLIENT_INITIATED,
            remove=True,
        ),
        _FINISH,
    ),
    # 486 Busy Here: callRejected, which sets no callStatus attribute (stays "ringing");
    # the bridge leaves with USER_REJECTED. The SIP code itself is not in any webhook.
    "busy": (
        *_JOIN,
        Step(None, call_status="ringing"),
        Step(
            "participant_left",
            disconnect_reason=Reason.USER_REJECTED,
            sip_status_code="486",
            sip_status="Busy Here",
            remove=True,
        ),
        _FINISH,
    ),
    # ringing timeout (no SIP final response, the bridge CANCELs): callUnavailable ->
    # USER_UNAVAILABLE. A 480/404/408 answer ends the same way.
    "no_answer": (
        *_JOIN,
        Step(None, call_status="ringing"),
        Step("participant_left", disconnect_reason=Reason.USER_UNAVAILABLE, remove=True),
        _FINISH,
    ),
    # carrier 5xx before ringing: classified SIP_TRUNK_FAILURE (see README note: the
    # real bridge may report the room disconnect itself with a less specific reason).
    "trunk_failure": (
        *_JOIN,
        Step(
            "participant_left",
            disconnect_reason=Reason.SIP_TRUNK_FAILURE,
            sip_status_code="503",
            sip_status="Service Unavailable",
            remove=True,
        ),
        _FINISH,
    ),
    # the agent died before dialing: nobody ever joined, the room times out and ends
    "agent_crashed": (_FINISH,),
}
