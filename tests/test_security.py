"""Signatures, tokens and callback URL rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.callback_urls import (
    CallbackUrlError,
    check_callback_url,
    is_forbidden_address,
    parse_callback_url,
)
from api.security import (
    api_key_matches,
    event_token,
    event_token_matches,
    hash_api_key,
    sign_payload,
    verify_signature,
)


def test_signature_round_trip_and_tampering() -> None:
    body = b'{"id":"e1","type":"call.answered"}'
    header = sign_payload(body, "whsec_x", timestamp=1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify_signature(body, header, "whsec_x", now=1_700_000_010)
    assert not verify_signature(body + b" ", header, "whsec_x", now=1_700_000_010)
    assert not verify_signature(body, header, "whsec_other", now=1_700_000_010)
    assert not verify_signature(body, header, "whsec_x", now=1_700_001_000)  # replay window
    assert not verify_signature(body, "garbage", "whsec_x")


# A known answer for the documented format, "t=<t>,v1=<hex HMAC-SHA256 of '<t>.<body>'>",
# computed outside Outdial and shown in docs/callbacks.md ("Verifying the signature"):
#   printf '%s' '1735689600.{"id":"evt_1","type":"call.answered","sequence":3}' \
#     | openssl dgst -sha256 -hmac 'whsec_0123456789abcdef'
# (the body alone, without "<t>.", gives 77c82732...: a signature that would not cover t).
VECTOR_SECRET = "whsec_0123456789abcdef"
VECTOR_TIMESTAMP = 1_735_689_600
VECTOR_BODY = b'{"id":"evt_1","type":"call.answered","sequence":3}'
VECTOR_HEADER = "t=1735689600,v1=73e0a1ec6bd3edffc0b5c4615b63ab4e3c67286e7d76ca33e77ce0f7de300a8a"


def test_signature_matches_the_documented_known_answer() -> None:
    assert sign_payload(VECTOR_BODY, VECTOR_SECRET, VECTOR_TIMESTAMP) == VECTOR_HEADER
    assert verify_signature(VECTOR_BODY, VECTOR_HEADER, VECTOR_SECRET, now=VECTOR_TIMESTAMP)


def test_the_signature_covers_the_timestamp() -> None:
    """A captured signature cannot be replayed under a fresh timestamp."""
    header = sign_payload(VECTOR_BODY, VECTOR_SECRET, VECTOR_TIMESTAMP)
    later = VECTOR_TIMESTAMP + 3_600
    moved = header.replace(f"t={VECTOR_TIMESTAMP},", f"t={later},")
    assert moved != header
    assert verify_signature(VECTOR_BODY, header, VECTOR_SECRET, now=VECTOR_TIMESTAMP)
    assert not verify_signature(VECTOR_BODY, moved, VECTOR_SECRET, now=later)


def test_the_docs_show_the_known_answer() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "callbacks.md").read_text()
    section = docs.split("## Verifying the signature", 1)[1].split("\n## ", 1)[0]
    for value in (VECTOR_SECRET, str(VECTOR_TIMESTAMP), VECTOR_BODY.decode(), VECTOR_HEADER):
        assert value in section, value
    assert '"<t>.<raw body>"' in section


def test_event_tokens_are_per_call() -> None:
    token = event_token("call-a", b"key")
    assert event_token_matches("call-a", token, b"key")
    assert not event_token_matches("call-b", token, b"key")
    assert not event_token_matches("call-a", token, b"other-key")


def test_api_keys_are_compared_by_hash() -> None:
    assert api_key_matches("od_secret", hash_api_key("od_secret"))
    assert not api_key_matches("od_secreT", hash_api_key("od_secret"))


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.8",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "224.0.0.1",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "100.64.0.1",
    ],
)
def test_non_public_addresses_are_forbidden(address: str) -> None:
    assert is_forbidden_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_forbidden_address(address)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x.com/",
        "https://u:p@x.com/",
        "http:///path",
        "https://x.com:99999/",
        "https://" + "a" * 2050 + ".com/",
    ],
)
def test_malformed_callback_urls(url: str) -> None:
    with pytest.raises(CallbackUrlError):
        parse_callback_url(url)


async def test_literal_private_hosts_are_refused_without_the_flag() -> None:
    with pytest.raises(CallbackUrlError, match="non-public"):
        await check_callback_url("http://127.0.0.1:8080/hook", allow_private=False)
    await check_callback_url("http://127.0.0.1:8080/hook", allow_private=True)
    assert parse_callback_url("https://example.com/x") == ("example.com", 443)
