"""The real API (`api.app:app`) with its lean Redis client counting what it sends, for
`bench/batch_accept.py`. `GET /bench/lean-counts` answers, so far: `roundTrips` (batches a
request sent and waited for: what one request costs in Redis round trips), `writes` (what
left on the socket: the batches of one loop turn leave in one write) and `commands`.

Run: uvicorn bench.lean_counted_app:app (the settings from the environment, as api.app's).
"""

from __future__ import annotations

from typing import Any

from api.app import app
from api.store.lean_redis import LeanRedis, _RespProtocol

_COUNTS = {"roundTrips": 0, "writes": 0, "commands": 0}
_roundtrip = LeanRedis._roundtrip
_flush = _RespProtocol._flush


async def _counted_roundtrip(self: LeanRedis, data: bytes, size: int) -> list[Any]:
    _COUNTS["roundTrips"] += 1
    _COUNTS["commands"] += size
    return await _roundtrip(self, data, size)


def _counted_flush(self: _RespProtocol) -> None:
    _COUNTS["writes"] += 1
    _flush(self)


LeanRedis._roundtrip = _counted_roundtrip  # type: ignore[method-assign]
_RespProtocol._flush = _counted_flush  # type: ignore[method-assign]


@app.get("/bench/lean-counts", include_in_schema=False)
async def lean_counts() -> dict[str, int]:
    return dict(_COUNTS)
