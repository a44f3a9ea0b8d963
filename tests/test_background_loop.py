"""A worker's background loop never dies while its worker runs (`api.jobs.loops`): a step or
a pause that raises, a Redis error or any other, is logged and the loop goes on."""

from __future__ import annotations

import threading

import pytest
import redis

from api.jobs.loops import BackgroundLoop


class _Flaky(BackgroundLoop):
    """Steps that ask for a pause; the first pauses and steps fail as told."""

    def __init__(self, failing_pauses: list[Exception], failing_steps: list[Exception]) -> None:
        super().__init__("flaky")
        self.failing_pauses = failing_pauses
        self.failing_steps = failing_steps
        self.steps = 0
        self.pauses = 0
        self.closed = False
        self.third_step = threading.Event()

    def step(self) -> float:
        self.steps += 1
        if self.steps >= 3:
            self.third_step.set()
        if self.failing_steps:
            raise self.failing_steps.pop(0)
        return 0.01

    def pause(self, seconds: float) -> None:
        self.pauses += 1
        if self.failing_pauses:
            raise self.failing_pauses.pop(0)
        super().pause(seconds)

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("pauses", "steps"),
    [
        ([redis.ConnectionError("BLPOP: connection reset")], []),
        ([RuntimeError("a bug in a pause")], []),
        ([], [redis.TimeoutError("timed out")]),
        ([], [ValueError("a bug in a step")]),
    ],
    ids=["redis-error-in-pause", "error-in-pause", "redis-error-in-step", "error-in-step"],
)
def test_a_failing_step_or_pause_leaves_the_loop_running(
    pauses: list[Exception], steps: list[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    loop = _Flaky(pauses, steps)
    loop.start()
    try:
        assert loop.third_step.wait(10), "the loop stopped after a failure"
        assert loop._thread.is_alive()
    finally:
        loop.stop()
    assert loop.closed and not loop._thread.is_alive()
    assert not loop.failing_pauses and not loop.failing_steps
    assert any("failed" in record.getMessage() for record in caplog.records)
