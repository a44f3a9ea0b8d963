"""`outdial dev` runs the API, the worker and the agent worker as one: one prefixed log,
Ctrl-C stops all three, and one that dies takes the others down with a non-zero exit.

It runs as a developer runs it, in a directory of its own, against the test Redis and
LiveKit servers; the agent worker registers with LiveKit for real.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from api.cli import dev as outdial_dev
from api.cli.dev import Child
from tests.conftest import REDIS_URL, delete_prefix
from tests.support import ROOT, TEST_API_KEY, TEST_API_SECRET, free_port, wait_until


class Dev:
    def __init__(self, tmp_path: Path, env: dict[str, str], port: int) -> None:
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "dev", "--port", str(port)],
            cwd=tmp_path, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        self._readers = [
            threading.Thread(target=self._collect, args=(self.process.stdout, self.lines)),
            threading.Thread(target=self._collect, args=(self.process.stderr, self.errors)),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _collect(stream: Any, into: list[str]) -> None:
        into.extend(stream)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def log(self) -> str:
        return "".join(self.lines) + "".join(self.errors)


def dev_env(tmp_path: Path, livekit_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": REDIS_URL,
        "LIVEKIT_URL": livekit_url,
        "LIVEKIT_API_KEY": TEST_API_KEY,
        "LIVEKIT_API_SECRET": TEST_API_SECRET,
        "OUTDIAL_REDIS_PREFIX": prefix,
        "OUTDIAL_WORKER_METRICS_PORT": "0",
        "OUTDIAL_AGENT_NAME": f"dev-{prefix}",
        **extra,
    }


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGHUP])
def test_ctrl_c_or_a_closed_terminal_stops_all_three(
    tmp_path: Path, lk: Any, redis_client: Any, stop: signal.Signals
) -> None:
    prefix = f"odtest-dev-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = dev_env(tmp_path, lk.url, prefix, OPENAI_API_KEY="sk-never-used")
    dev = Dev(tmp_path, env, port)
    try:

        def all_up() -> bool:
            try:
                answered = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except httpx.TransportError:
                return False
            registered = f"dev-{prefix}" in [w.agent_name for w in lk.workers()]
            names = {line.split("|", 1)[0].strip() for line in dev.lines if "|" in line}
            return answered.status_code == 200 and registered and names >= {"api", "worker"}

        wait_until(all_up, timeout=90, interval=0.2, what="api, worker and agent")
        children = psutil.Process(dev.process.pid).children(recursive=True)
        assert len(children) >= 3
        dev.process.send_signal(stop)
        assert dev.wait(timeout=60) == 0, dev.log()
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, alive
        names = {line.split("|", 1)[0].strip() for line in dev.lines}
        assert names == {"api", "worker", "agent"}, dev.log()
        assert "Traceback" not in dev.log()
    finally:
        if dev.process.poll() is None:
            dev.process.kill()
        delete_prefix(redis_client, prefix)


def test_one_dying_stops_the_others(tmp_path: Path, lk: Any, redis_client: Any) -> None:
    prefix = f"odtest-dev-{uuid.uuid4().hex[:8]}"
    # no model key: the agent worker refuses to start (exit 2), the other two are stopped
    dev = Dev(tmp_path, dev_env(tmp_path, lk.url, prefix), free_port())
    try:
        assert dev.wait(timeout=90) == 2, dev.log()
        assert any(line.startswith("agent  | outdial agent: refusing") for line in dev.lines)
        assert "agent exited with status 2; stopping the others" in "".join(dev.errors)
    finally:
        if dev.process.poll() is None:
            dev.process.kill()
        delete_prefix(redis_client, prefix)


async def test_a_line_over_the_limit_is_copied_in_pieces(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    script = "print('x' * 5000); print('after')"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, limit=1024
    )
    await outdial_dev._copy_lines(Child("api", process), 3)
    assert await process.wait() == 0
    lines = capsysbinary.readouterr().out.splitlines()
    assert all(line.startswith(b"api | ") for line in lines), lines
    assert b"".join(line.removeprefix(b"api | ") for line in lines) == b"x" * 5000 + b"after"
