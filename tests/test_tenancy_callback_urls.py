"""Callback URL checks (issue 10, item 13): IPv6 addresses that carry a private IPv4 address
are refused, and the accept path's DNS lookup has a timeout."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from api.callback_urls import (
    DNS_TIMEOUT_SECONDS,
    CallbackUrlError,
    check_callback_url,
    is_forbidden_address,
)


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::127.0.0.1",  # IPv4-compatible
        "::10.0.0.1",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:c0a8:101::",  # 6to4 of 192.168.1.1
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
        "64:ff9b::7f00:1",  # NAT64 well-known prefix
        "64:ff9b::a00:1",
        "64:ff9b:1::a9fe:a9fe",  # NAT64 local-use prefix
        "::ffff:0:7f00:1",  # IPv4-translated
        "2606:4700::5efe:7f00:1",  # ISATAP interface id carrying 127.0.0.1
        "2606:4700::200:5efe:a00:1",  # ISATAP (universal bit set) carrying 10.0.0.1
    ],
)
def test_ipv6_forms_embedding_private_ipv4_are_forbidden(address: str) -> None:
    assert is_forbidden_address(address)


@pytest.mark.parametrize(
    "address",
    ["2606:4700::1111", "2002:5db8:d822::1", "2a00:1450:4001:80b::200e"],  # 6to4 of a public one
)
def test_public_ipv6_stays_allowed(address: str) -> None:
    assert not is_forbidden_address(address)


async def test_literal_6to4_of_loopback_is_refused() -> None:
    with pytest.raises(CallbackUrlError, match="non-public"):
        await check_callback_url("http://[2002:7f00:1::]:8080/hook", allow_private=False)


async def test_dns_lookup_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()

    async def slow_getaddrinfo(*_: Any, **__: Any) -> list[Any]:
        await asyncio.sleep(30)
        return []

    monkeypatch.setattr(loop, "getaddrinfo", slow_getaddrinfo)
    started = time.monotonic()
    with pytest.raises(CallbackUrlError, match="did not resolve within"):
        await check_callback_url("https://slow.example.com/hook", allow_private=False)
    assert time.monotonic() - started < DNS_TIMEOUT_SECONDS + 1
