"""Contact CSV files: the reader alone, and the do-not-call import through the API.

1. The reader (`api.services.contact_csv`) over generated files: wall time and rows/s
   (one pass), and the peak Python allocation (tracemalloc, a second pass: it slows the
   reading, so it is not timed).
2. `POST /v1/api/dnc/import` with a generated file as a multipart upload, through the real
   API under uvicorn (one process, a fresh one per file, so its peak memory is that file's):
   the request's wall time, and the API process's resident memory before the upload and at
   its peak (VmHWM, /proc).

The files hold distinct US numbers (+1, five area codes: the slowest country to parse, a
number's region is searched among 25) with a first-name variable and a metadata column,
written to a temporary file first (not timed).

    PYTHONPATH=. python -m bench.contact_csv [--parse 100000 1000000] [--api 100000 1000000]

Needs Redis at REDIS_URL; writes under a fresh prefix and deletes it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import redis

from api.services.contact_csv import ContactCsvReader, CsvLimits, CsvReport
from api.settings import Settings
from tests.support import ADMIN_TOKEN, ROOT, free_port, settings_env, wait_until

AREA_CODES = ("212", "415", "312", "617", "206")
LIMITS = CsvLimits(max_bytes=1 << 30, max_rows=1_000_000, max_columns=128, max_field_chars=4096)


def write_file(rows: int, path: Path) -> int:
    """`rows` distinct numbers (exchanges 200-999 of five area codes), as CSV at `path`."""
    with path.open("w", newline="") as out:
        out.write("phone,first_name,metadata.ref\r\n")
        for n in range(rows):
            area = AREA_CODES[n % 5]
            exchange = 200 + (n // 5 // 10_000) % 800
            out.write(f"+1{area}{exchange}{n // 5 % 10_000:04d},Name {n % 977},r{n}\r\n")
    return path.stat().st_size


async def file_chunks(path: Path, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(size):
            yield chunk


async def read_file(path: Path) -> CsvReport:
    reader = ContactCsvReader(file_chunks(path), limits=LIMITS)
    async for _ in reader.batches():
        pass
    return reader.report


async def bench_reader(rows: int, path: Path) -> dict[str, float]:
    started = time.perf_counter()
    report = await read_file(path)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    await read_file(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "rows": rows,
        "accepted": report.accepted,
        "rejected": report.rejected,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "peak_mib": peak / 2**20,
    }


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _settings(prefix: str) -> Settings:
    return Settings(
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        LIVEKIT_URL="http://127.0.0.1:1",
        LIVEKIT_API_KEY="bench",
        LIVEKIT_API_SECRET="bench-secret-that-is-long-enough-for-hs256",
        OUTDIAL_ADMIN_TOKEN=ADMIN_TOKEN,
        OUTDIAL_REDIS_PREFIX=prefix,
        OUTDIAL_SECRET_KEY="bench",
        OUTDIAL_LOG_JSON=False,
        OUTDIAL_LOG_LEVEL="WARNING",
    )


def bench_api(rows: int, path: Path, settings: Settings) -> dict[str, float]:
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:app", "--port", str(port),
         "--log-level", "warning"],
        cwd=ROOT, env=os.environ | settings_env(settings) | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
            wait_until(lambda: _up(http), timeout=30, what="the API")
            created = http.post(
                "/v1/admin/workspaces",
                json={"name": "bench"},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            ).json()
            headers = {"x-workspace-id": created["workspaceId"], "x-api-key": created["apiKey"]}
            rss_before = _memory_kib(api.pid, "VmRSS")
            with path.open("rb") as upload:
                started = time.perf_counter()
                response = http.post(
                    "/v1/api/dnc/import",
                    files={"file": ("contacts.csv", upload, "text/csv")},
                    headers=headers,
                )
                seconds = time.perf_counter() - started
            assert response.status_code == 200, response.text
            answer = response.json()
            return {
                "rows": rows,
                "added": answer["added"],
                "rejected": answer["rejected"],
                "seconds": seconds,
                "rows_per_s": rows / seconds,
                "rss_before_mib": rss_before / 1024,
                "rss_peak_mib": _memory_kib(api.pid, "VmHWM") / 1024,
            }
    finally:
        api.terminate()
        api.wait(timeout=10)


def _up(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def _table(title: str, results: list[dict[str, float]]) -> None:
    print(f"\n{title}")
    columns = list(results[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for result in results:
        cells = [f"{value:,.0f}" if value >= 100 else f"{value:.2f}" for value in result.values()]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parse", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--api", type=int, nargs="*", default=[100_000, 1_000_000])
    args = parser.parse_args()
    prefix = f"bench-csv-{uuid.uuid4().hex[:8]}"
    settings = _settings(prefix)
    with tempfile.TemporaryDirectory() as folder:
        files: dict[int, Path] = {}
        for rows in sorted({*args.parse, *args.api}):
            files[rows] = Path(folder) / f"{rows}.csv"
            size = write_file(rows, files[rows])
            print(f"{rows:,} rows: {size / 2**20:.1f} MiB")
        if args.parse:
            readings = [asyncio.run(bench_reader(rows, files[rows])) for rows in args.parse]
            _table("reader (in process)", readings)
        try:
            if args.api:
                imports = [bench_api(rows, files[rows], settings) for rows in args.api]
                _table("POST /v1/api/dnc/import (API under uvicorn)", imports)
        finally:
            client = redis.Redis.from_url(settings.redis_url)
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(key)


if __name__ == "__main__":
    main()
