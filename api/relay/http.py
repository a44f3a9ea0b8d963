"""One HTTP attempt at a callback, through a session that refuses non-public addresses.

The callback URL was checked when the call was accepted, but DNS can change afterwards:
the resolver checks every address again at connect time (so the check and the connection
use the same answer), and IP literals, which aiohttp never resolves, are checked here.
Redirects are never followed: a 3xx could point anywhere.
"""

from __future__ import annotations

import ipaddress
import socket
import time

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from api.callback_urls import CallbackUrlError, is_forbidden_address, parse_callback_url
from api.relay.policy import AttemptResult, outcome_for_status, parse_retry_after

_ERROR_BODY_CHARS = 200


class ForbiddenAddressError(OSError):
    """The callback host resolves to an address callbacks may not reach."""


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp does, then refuses non-public answers unless allowed."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            for result in results:
                if is_forbidden_address(result["host"]):
                    raise ForbiddenAddressError(
                        f"callback host {host!r} resolves to a non-public address "
                        f"({result['host']}); delivery refused"
                    )
        return results

    async def close(self) -> None:
        await self._inner.close()


def open_delivery_session(allow_private: bool) -> aiohttp.ClientSession:
    """A session for callbacks (call it on the loop that will use it; its owner closes it,
    see api/resources.py)."""
    # No pool limit: in-flight attempts are bounded by worker threads and the per-workspace
    # cap, and a pool limit would let one slow host block the rest.
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(allow_private), limit=0, ttl_dns_cache=10
    )
    return aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
    )


def refused_literal(url: str, allow_private: bool) -> str | None:
    """Why the URL may not be reached before any connection is made (None = go ahead)."""
    try:
        host, _ = parse_callback_url(url)
    except CallbackUrlError as exc:
        return str(exc)
    if allow_private:
        return None
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None  # a name: the resolver checks what it resolves to
    if is_forbidden_address(host):
        return f"callback host {host} is a non-public address; delivery refused"
    return None


async def _error_excerpt(response: aiohttp.ClientResponse) -> str:
    try:
        chunk = await response.content.read(_ERROR_BODY_CHARS)
    except (aiohttp.ClientError, TimeoutError):
        return ""
    return chunk.decode(errors="replace").strip()


async def post_event(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_seconds: float,
    allow_private: bool,
) -> AttemptResult:
    refusal = refused_literal(url, allow_private)
    if refusal is not None:
        return AttemptResult("failed", error=refusal)
    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        ) as response:
            status = response.status
            outcome = outcome_for_status(status)
            if outcome == "delivered":
                return AttemptResult("delivered", status=status)
            if 300 <= status < 400:
                location = response.headers.get("Location", "")
                return AttemptResult(
                    "failed", status=status, error=f"redirect to {location!r} not followed"
                )
            excerpt = await _error_excerpt(response)
            retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
            error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
            return AttemptResult(outcome, status=status, error=error, retry_after=retry_after)
    except aiohttp.ClientConnectorDNSError as exc:
        if isinstance(exc.os_error, ForbiddenAddressError):
            return AttemptResult("failed", error=str(exc.os_error))
        return AttemptResult("retry", error=f"DNS lookup failed: {exc.os_error}")
    except TimeoutError:
        return AttemptResult("retry", error=f"no answer within {timeout_seconds:g}s")
    except aiohttp.ClientError as exc:
        return AttemptResult("retry", error=f"{type(exc).__name__}: {exc}")
