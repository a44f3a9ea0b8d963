"""Callback URLs: http(s), no credentials, and no private targets (SSRF) unless allowed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048


class CallbackUrlError(ValueError):
    """The callback URL is not acceptable; the message says why."""


def is_forbidden_address(address: str) -> bool:
    """Loopback, private, link-local, multicast, reserved or unspecified addresses."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


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


async def resolve_allowed(host: str, port: int, allow_private: bool) -> list[str]:
    """Resolve `host`; every address must be public unless `allow_private`."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise CallbackUrlError(f"callback host {host!r} does not resolve") from exc
    addresses = sorted({info[4][0] for info in infos})
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
