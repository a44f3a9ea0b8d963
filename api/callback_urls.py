"""Callback URLs: http(s), no credentials, and no private targets (SSRF) unless allowed.

A target is private if its address is, or if it is an IPv6 address that carries a private
IPv4 address in any of the embedding forms (the packet may end up at that IPv4 host).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
# The accept path waits at most this long for the callback host's DNS answer (a slow or
# hostile resolver must not hold the request).
DNS_TIMEOUT_SECONDS = 2.0


class CallbackUrlError(ValueError):
    """The callback URL is not acceptable; the message says why."""


# RFC 6052 NAT64 prefixes (well-known and local-use): the IPv4 address is the last 32 bits.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# RFC 6145 IPv4-translated addresses (::ffff:0:a.b.c.d).
_TRANSLATED = ipaddress.ip_network("::ffff:0:0/96")
# ISATAP interface identifiers (RFC 5214): 0000:5efe or 0200:5efe, then the IPv4 address.
_ISATAP_IDS = (0x00005EFE, 0x02005EFE)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries (a packet to it may reach that host:
    mapped, compatible, 6to4, Teredo server and client, NAT64, translated, ISATAP)."""
    value = int(ip)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped:
        found.append(ip.ipv4_mapped)
    if value >> 32 == 0 and value > 1:  # IPv4-compatible ::a.b.c.d (not :: or ::1)
        found.append(low32)
    if ip.sixtofour:
        found.append(ip.sixtofour)
    if ip.teredo:
        found.extend(ip.teredo)
    if any(ip in network for network in _NAT64) or ip in _TRANSLATED:
        found.append(low32)
    if (value >> 32) & 0xFFFFFFFF in _ISATAP_IDS:
        found.append(low32)
    return found


def _is_non_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def is_forbidden_address(address: str) -> bool:
    """Loopback, private, link-local, multicast, reserved or unspecified addresses, and
    IPv6 addresses that embed such an IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        return _is_non_public(ip) or any(_is_non_public(v4) for v4 in embedded_ipv4(ip))
    return _is_non_public(ip)


def parse_callback_url(url: str) -> tuple[str, int]:
    """Check the URL's form; returns (host, port)."""
    if len(url) > MAX_URL_LENGTH:
        raise CallbackUrlError(f"callback_url is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackUrlError(f"callback_url is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise CallbackUrlError("callback_url must use http or https")
    if parts.username is not None or parts.password is not None:
        raise CallbackUrlError("callback_url must not contain credentials")
    if not parts.hostname:
        raise CallbackUrlError("callback_url has no host")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def resolve_allowed(
    host: str, port: int, allow_private: bool, timeout_seconds: float = DNS_TIMEOUT_SECONDS
) -> list[str]:
    """Resolve `host` within `timeout_seconds`; every address must be public unless
    `allow_private`."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_seconds):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise CallbackUrlError(
            f"callback host {host!r} did not resolve within {timeout_seconds:g} s"
        ) from exc
    except OSError as exc:
        raise CallbackUrlError(f"callback host {host!r} does not resolve") from exc
    # the socket address of an AF_INET/AF_INET6 result starts with the address as text
    addresses = sorted({str(info[4][0]) for info in infos})
    if not allow_private:
        forbidden = [address for address in addresses if is_forbidden_address(address)]
        if forbidden:
            raise CallbackUrlError(
                f"callback host {host!r} resolves to a non-public address ({forbidden[0]})"
            )
    return addresses


async def check_callback_url(url: str, allow_private: bool) -> None:
    host, port = parse_callback_url(url)
    if allow_private:
        return
    await resolve_allowed(host, port, allow_private)


class CallbackUrlChecks:
    """`check_callback_url` once per distinct URL of one request (a batch's calls mostly
    share theirs, and its DNS lookups then run side by side)."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        # URL -> why it is refused ('' when it is not)
        self._refusals: dict[str, str] = {}

    async def check(self, url: str) -> None:
        """CallbackUrlError unless `url` is acceptable (checked the first time only)."""
        if url not in self._refusals:
            try:
                await check_callback_url(url, self._allow_private)
                self._refusals[url] = ""
            except CallbackUrlError as exc:
                self._refusals[url] = str(exc)
        if refusal := self._refusals[url]:
            raise CallbackUrlError(refusal)

    async def check_all(self, urls: set[str]) -> None:
        """Check `urls` concurrently, for `check` to answer from what it found."""
        await asyncio.gather(*(self.check(url) for url in urls), return_exceptions=True)
