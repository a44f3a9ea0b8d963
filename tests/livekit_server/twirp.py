"""Twirp wire format and auth, the way livekit-server (twitchtv/twirp + its auth middleware)
answers.

Checked against livekit-server's pkg/service/auth.go and twirp's error handling:
- Requests are ``POST /twirp/livekit.<Service>/<Method>``; the body is binary protobuf
  (``application/protobuf``, what livekit-api sends) or protojson (``application/json``).
  The answer uses the request's content type.
- Errors are JSON ``{"code", "msg", "meta"?}`` with the Twirp code's HTTP status.
- A token that does not verify (bad signature, expired, unknown key) is rejected by the
  auth middleware *before* Twirp, with 401 and a plain-text body, so livekit-api reports
  ``ServerError(code="unknown", status=401)``. A request without a token passes the
  middleware with no grants; each RPC then rejects missing grants with Twirp
  ``unauthenticated`` (401, msg "permissions denied"), not ``permission_denied``.
  ``auth_style="strict"`` switches to JSON 401 ``unauthenticated`` for bad tokens and
  403 ``permission_denied`` for missing grants.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

AuthStyle = Literal["livekit", "strict"]

# twitchtv/twirp ServerHTTPStatusFromErrorCode. Note deadline_exceeded and canceled are
# 408 in Twirp (livekit-api treats every 4xx as final), not 504.
TWIRP_STATUS: dict[str, int] = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}

PROTOBUF = "application/protobuf"
JSON = "application/json"
# JWT leeway livekit uses on both sides (Go auth and livekit-api TokenVerifier).
LEEWAY_SECONDS = 60


class TwirpError(Exception):
    def __init__(
        self,
        code: str,
        msg: str,
        *,
        meta: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.meta = dict(meta or {})
        self.status = status if status is not None else TWIRP_STATUS.get(code, 500)

    def response(self) -> web.Response:
        body: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.meta:
            body["meta"] = self.meta
        return web.Response(
            status=self.status, body=json.dumps(body).encode(), content_type="application/json"
        )


class PlainHTTPError(Exception):
    """A non-Twirp error answered by middleware (plain text body), like livekit's
    HandleError."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text

    def response(self) -> web.Response:
        return web.Response(status=self.status, text=self.text)


def bad_route(method: str, path: str, why: str = "") -> TwirpError:
    msg = why or f"no handler for path {json.dumps(path)}"
    return TwirpError("bad_route", msg, meta={"twirp_invalid_route": f"{method} {path}"})


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def decode(body: bytes, content_type: str, cls: type[Message]) -> Message:
    msg = cls()
    try:
        if content_type == JSON:
            # like twirp's generated server: protojson with DiscardUnknown
            json_format.Parse(body or b"{}", msg, ignore_unknown_fields=True)
        else:
            msg.ParseFromString(body)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
        raise TwirpError("malformed", f"the request could not be decoded: {exc}") from None
    return msg


def encode(msg: Message, content_type: str) -> web.Response:
    if content_type == JSON:
        return web.Response(
            body=json_format.MessageToJson(msg, indent=None).encode(),
            content_type="application/json",
        )
    return web.Response(body=msg.SerializeToString(), content_type=PROTOBUF)


def authenticate(
    header: str | None, api_key: str, api_secret: str, style: AuthStyle
) -> dict[str, Any]:
    """Return the verified JWT claims ({} when no token was sent) or raise."""
    if not header:
        if style == "strict":
            raise TwirpError("unauthenticated", "missing authorization header")
        return {}
    if not header.startswith("Bearer "):
        _reject(style, "invalid authorization header. Must start with Bearer ")
    token = header[len("Bearer ") :]
    try:
        return jwt.decode(
            token,
            api_secret,
            algorithms=["HS256"],
            issuer=api_key,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss"]},
        )
    except jwt.InvalidIssuerError:
        _reject(style, "invalid API key")
    except jwt.PyJWTError as exc:
        _reject(style, f"invalid authorization token: {exc}")
    raise AssertionError("unreachable")


def _reject(style: AuthStyle, text: str) -> None:
    if style == "strict":
        raise TwirpError("unauthenticated", text)
    raise PlainHTTPError(401, text)


@dataclass(frozen=True)
class Grants:
    """What one RPC needs, mirroring the Ensure*Permission checks of livekit-server."""

    room_create: bool = False
    room_list: bool = False
    room_admin: bool = False  # video.roomAdmin and video.room == the request's room
    sip_admin: bool = False
    sip_call: bool = False


def check_grants(claims: dict[str, Any], need: Grants, room: str, style: AuthStyle) -> None:
    video = claims.get("video") or {}
    sip = claims.get("sip") or {}
    ok = True
    if need.room_create and not video.get("roomCreate"):
        ok = False
    if need.room_list and not video.get("roomList"):
        ok = False
    if need.room_admin and not (video.get("roomAdmin") and video.get("room", "") == room):
        ok = False
    if need.sip_admin and not sip.get("admin"):
        ok = False
    if need.sip_call and not sip.get("call"):
        ok = False
    if not ok:
        if style == "strict":
            raise TwirpError("permission_denied", "permissions denied")
        raise TwirpError("unauthenticated", "permissions denied")
