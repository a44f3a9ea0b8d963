"""One LiveKitAPI client per process and event loop, created lazily and closed on shutdown."""

from __future__ import annotations

import asyncio

from livekit import api as lkapi

from api.settings import Settings

_clients: dict[int, lkapi.LiveKitAPI] = {}


def livekit_client(settings: Settings) -> lkapi.LiveKitAPI:
    """The client of the running loop (it owns an aiohttp session bound to that loop)."""
    loop_id = id(asyncio.get_running_loop())
    client = _clients.get(loop_id)
    if client is None:
        client = lkapi.LiveKitAPI(
            url=settings.livekit_url,
            api_key=settings.livekit_api_key,
            api_secret=settings.livekit_api_secret,
        )
        _clients[loop_id] = client
    return client


async def close_livekit_client() -> None:
    client = _clients.pop(id(asyncio.get_running_loop()), None)
    if client is not None:
        await client.aclose()
