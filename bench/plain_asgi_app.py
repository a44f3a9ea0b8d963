"""The floor for accept throughput: the reference's one Redis LPUSH behind a raw ASGI app.

No FastAPI, no Starlette: what uvicorn and redis-py cost by themselves under the same
settings, so the reference's FastAPI share and the API's own share can be told apart.

Run: uvicorn bench.plain_asgi_app:app (REDIS_URL, OUTDIAL_REDIS_PREFIX from the environment).
"""

from __future__ import annotations

import os

from redis.asyncio import Redis
from starlette.types import Receive, Scope, Send

_redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
# The reference's key: the bench deletes it once, whichever app wrote it.
_key = os.environ.get("OUTDIAL_REDIS_PREFIX", "bench") + ":reference"
_ANSWER = b'{"status":"success"}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_ANSWER))]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return  # lifespan: nothing to open or close (uvicorn then carries on without it)
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await _redis.lpush(_key, b"".join(chunks))
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _ANSWER})
