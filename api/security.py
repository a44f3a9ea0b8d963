"""Secrets: API keys and integration (hook) tokens (both stored hashed), per-call event
tokens, callback signatures.

Every secret comparison goes through `secrets_match`: constant-time over UTF-8 bytes, so a
token with non-ASCII characters is simply a wrong token (`hmac.compare_digest` raises
`TypeError` on non-ASCII `str` arguments).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

SIGNATURE_HEADER = "X-Outdial-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def new_api_key() -> str:
    return "od_" + secrets.token_urlsafe(32)


# An integration token: `hk_` and 32 URL-safe characters (192 random bits).
HOOK_TOKEN_PREFIX = "hk_"
_HOOK_TOKEN = re.compile(r"hk_[A-Za-z0-9_-]{32}\Z")


# Where a workspace's integration base URL puts its token: `{base}/hooks/<token>`.
HOOKS_PREFIX = "/hooks/"


def integration_base_url(base_url: str, hook_token: str) -> str:
    """The workspace's integration base URL: vendor routes under it need no header."""
    return f"{base_url.rstrip('/')}{HOOKS_PREFIX}{hook_token}"


def new_hook_token() -> str:
    return HOOK_TOKEN_PREFIX + secrets.token_urlsafe(24)


def is_hook_token_shape(text: str) -> bool:
    """Whether `text` could be an integration token (anything else is refused unread)."""
    return _HOOK_TOKEN.match(text) is not None


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_hex(32)


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def secrets_match(presented: str, expected: str) -> bool:
    """Constant-time equality of two secrets, whatever characters the presented one holds."""
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def api_key_matches(api_key: str, stored_hash: str) -> bool:
    return secrets_match(hash_api_key(api_key), stored_hash)


def event_token(call_id: str, signing_key: bytes) -> str:
    """The per-call token agents present: verifiable without a lookup."""
    return hmac.new(signing_key, f"call-events:{call_id}".encode(), hashlib.sha256).hexdigest()


def event_token_matches(call_id: str, token: str, signing_key: bytes) -> bool:
    return secrets_match(token, event_token(call_id, signing_key))


def sign_payload(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def verify_signature(
    body: bytes,
    header: str,
    secret: str,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Check an `X-Outdial-Signature` header against the raw request body.

    Receivers call this with the exact bytes they received and their workspace's
    webhook secret; a timestamp older than `tolerance_seconds` is refused (replays).
    """
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        stamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance_seconds:
        return False
    expected = sign_payload(body, secret, stamp).split("v1=", 1)[1]
    return secrets_match(parts.get("v1", ""), expected)
