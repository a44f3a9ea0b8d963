"""`outdial worker --processes 2` serves both processes' metrics on its one port.

A real `outdial worker` subprocess with two Dramatiq processes relays messages for calls
that do not exist (each one a counted message, nothing else); the scrape of its metrics
port must count every message, and the per-process files it is summed from must show that
both processes took part. Once the worker has stopped, its multiprocess directory is gone
(a fresh one) or empty (a given one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from api.settings import Settings
from api.store.messages import RELAY_ACTOR, RELAY_QUEUE
from tests.support import ROOT, free_port, settings_env, wait_until

MESSAGES_METRIC = "outdial_worker_messages_total"
BATCH = 20


class OutdialWorker:
    """`outdial worker --processes 2 --threads 1` in its own process group."""

    def __init__(self, settings: Settings, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:  # the child writes through its own copy
            self.process = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "worker", "--processes", "2", "--threads", "1"],
                env=os.environ | settings_env(settings) | {"PYTHONPATH": str(ROOT)} | env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> int:
        """SIGTERM (Dramatiq's graceful stop); SIGKILL the group if that does not end it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def scraped_messages(port: int) -> float | None:
    """The relay messages the worker's port counts (None while it does not answer)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.TransportError:
        return None
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == MESSAGES_METRIC and sample.labels.get("actor") == RELAY_ACTOR
    )


def messages_by_process(metrics_dir: Path) -> dict[str, float]:
    """Per process id: the relay messages it counted, read from its own file (made when the
    process starts, so a process that counted nothing reads 0)."""
    counted = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = path.stem.rsplit("_", 1)[1]
        counted[pid] = sum(
            sample.value
            for family in MultiProcessCollector.merge([str(path)])
            for sample in family.samples
            if sample.name == MESSAGES_METRIC and sample.labels.get("actor") == RELAY_ACTOR
        )
    return counted


def wait_until_scraped(port: int, count: int) -> None:
    wait_until(lambda: scraped_messages(port) == count, 30, 0.1, f"{count} messages scraped")


@pytest.fixture
def broker(settings: Settings) -> Iterator[RedisBroker]:
    """A client of the worker's queues (under the test's key prefix)."""
    client = RedisBroker(url=settings.redis_url, namespace=settings.broker_namespace)
    yield client
    client.client.connection_pool.disconnect()


def send_relay_batch(broker: RedisBroker) -> None:
    for _ in range(BATCH):
        call_id = f"c-missing-{uuid.uuid4().hex[:12]}"
        broker.enqueue(Message(RELAY_QUEUE, RELAY_ACTOR, (call_id,), {}, {}))


@pytest.mark.parametrize("directory", ["fresh", "given"])
def test_two_worker_processes_are_counted_in_one_scrape(
    settings: Settings, broker: RedisBroker, tmp_path: Path, directory: str
) -> None:
    port = free_port()
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"TMPDIR": str(temp)}  # where a fresh directory is made
    if directory == "given":
        given = tmp_path / "metrics"
        given.mkdir()
        (given / "counter_1.db").write_bytes(b"stale")  # a previous run's, removed at start
        env["PROMETHEUS_MULTIPROC_DIR"] = str(given)
    metered = settings.model_copy(update={"worker_metrics_port": port})
    worker = OutdialWorker(metered, env, tmp_path / "worker.log")
    try:
        # The port is served once both processes are up (Dramatiq starts its forks then).
        wait_until(lambda: scraped_messages(port) is not None, 30, 0.1, "the metrics port")
        fresh = list(temp.glob("outdial-worker-metrics-*"))
        [metrics_dir] = [given] if directory == "given" else fresh
        sent = 0
        # One message at a time per process (1 thread, prefetch 1): both soon take part.
        while sum(map(bool, messages_by_process(metrics_dir).values())) < 2 and sent < 200:
            send_relay_batch(broker)
            sent += BATCH
            wait_until_scraped(port, sent)
        by_process = messages_by_process(metrics_dir)
        assert len(by_process) == 2 and all(by_process.values()), by_process
        assert sum(by_process.values()) == sent == scraped_messages(port)
    finally:
        exit_code = worker.stop()
    assert exit_code == 0, worker.log()
    if directory == "given":
        assert list(given.iterdir()) == []
    assert list(temp.glob("outdial-worker-metrics-*")) == []
