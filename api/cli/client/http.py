"""The API over HTTP: requests with the workspace's or the operator's credentials, and the
live event stream read as server-sent events.

Invariant: every failure leaves as one of two exceptions with a one-line message: `Refused`
(the API answered with an error: its code and message) and `Unreachable` (no API answered
at the URL, or what answered there is not Outdial's API: its answer is not JSON, or not
the event stream). A command never shows a traceback for either.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from api.cli.client.config import Target

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5)
# The stream sends a heartbeat every 15 s: three missed ones mean the connection is dead.
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5, sock_read=45)
NOT_THE_API = "the server there is not an Outdial API (its answer is not the API's JSON)"


class Refused(Exception):
    """The API answered with an error (`status`, its stable `code`, `message`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


class Unreachable(Exception):
    """Nothing (or no HTTP server) answered at the API URL."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the Outdial API at {url}: {reason} (is it running? "
            "set --api-url or OUTDIAL_API_URL)"
        )


class MissingCredentials(Exception):
    pass


@dataclass(frozen=True, slots=True)
class StreamItem:
    """One server-sent event: its id (the feed entry) and its `data`, decoded."""

    id: str | None
    data: dict[str, Any]


async def _refusal(response: aiohttp.ClientResponse) -> Refused:
    text = await response.text()
    try:
        body = json.loads(text)
        return Refused(response.status, str(body["code"]), str(body["message"]))
    except (ValueError, KeyError, TypeError):
        said = " ".join(text.split())[:200]  # an HTML page: one line
        return Refused(response.status, "HTTP_ERROR", said or response.reason or "")


class Api:
    """One session to the API at `target.api_url`; use as `async with Api(target) as api`."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self._session = aiohttp.ClientSession(timeout=REQUEST_TIMEOUT)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    def _headers(self, admin: bool) -> dict[str, str]:
        target = self.target
        if admin:
            if not target.admin_token:
                raise MissingCredentials("the admin API needs --admin-token or OUTDIAL_ADMIN_TOKEN")
            return {"Authorization": f"Bearer {target.admin_token}"}
        if not target.workspace_id or not target.api_key:
            raise MissingCredentials(
                "no workspace credentials: give --workspace and --key, set "
                "OUTDIAL_WORKSPACE_ID and OUTDIAL_API_KEY, or run `outdial login`"
            )
        return {"x-workspace-id": target.workspace_id, "x-api-key": target.api_key}

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        admin: bool = False,
    ) -> Any:
        """The decoded JSON answer (None for a 204)."""
        assert self._session is not None
        url = self.target.api_url + path
        try:
            async with self._session.request(
                method, url, json=body, params=params, headers=self._headers(admin)
            ) as response:
                if response.status >= 400:
                    raise await _refusal(response)
                if response.status == 204:
                    return None
                return await response.json(content_type=None)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise Unreachable(self.target.api_url, NOT_THE_API) from exc
        except aiohttp.ClientConnectorError as exc:
            raise Unreachable(self.target.api_url, _reason(exc)) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unreachable(self.target.api_url, str(exc) or type(exc).__name__) from exc

    async def events(
        self, params: dict[str, str], last_event_id: str | None = None
    ) -> AsyncIterator[StreamItem]:
        """The workspace's live events (`GET /v1/api/events/stream`), as they arrive."""
        assert self._session is not None
        headers = self._headers(admin=False)
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        url = self.target.api_url + "/v1/api/events/stream"
        try:
            async with self._session.get(
                url, params=params, headers=headers, timeout=STREAM_TIMEOUT
            ) as response:
                if response.status >= 400:
                    raise await _refusal(response)
                if response.content_type != "text/event-stream":
                    raise Unreachable(self.target.api_url, NOT_THE_API)
                async for item in _parse(response.content):
                    yield item
        except ValueError as exc:  # an event that is not JSON, or not text
            raise Unreachable(self.target.api_url, NOT_THE_API) from exc
        except aiohttp.ClientConnectorError as exc:
            raise Unreachable(self.target.api_url, _reason(exc)) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unreachable(self.target.api_url, str(exc) or type(exc).__name__) from exc


def _reason(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc.os_error, ConnectionRefusedError):
        return "connection refused"
    return exc.strerror or str(exc)


async def _parse(content: aiohttp.StreamReader) -> AsyncIterator[StreamItem]:
    """Server-sent events (the subset the API sends): `id:` and `data:` fields, a blank line
    ends an event, comment lines (`:`) are skipped."""
    entry_id: str | None = None
    data: list[str] = []
    async for raw in content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith(":"):
            continue
        if not line:
            if data:
                yield StreamItem(entry_id, json.loads("\n".join(data)))
            data = []
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id":
            entry_id = value
        elif field == "data":
            data.append(value)
