"""The reference for accept throughput: a bare FastAPI endpoint doing one Redis LPUSH.

Run: uvicorn bench.reference_app:app (REDIS_URL, OUTDIAL_REDIS_PREFIX from the environment).
"""

from __future__ import annotations

import os

from fastapi import FastAPI, Request
from redis.asyncio import Redis

app = FastAPI()
_redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
_key = os.environ.get("OUTDIAL_REDIS_PREFIX", "bench") + ":reference"


@app.post("/v1/api/call")
async def accept(request: Request) -> dict[str, str]:
    await _redis.lpush(_key, await request.body())
    return {"status": "success"}
