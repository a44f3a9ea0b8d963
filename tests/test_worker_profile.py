"""api/jobs/profiling.py: with OUTDIAL_WORKER_PROFILE_DIR, a worker process writes the CPU
profile of the threads it started, also when it leaves as a multiprocessing child does
(Dramatiq's worker processes: os._exit, past atexit)."""

from __future__ import annotations

import pstats
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

CHILD = """
import multiprocessing, sys, threading
from api.jobs.profiling import profile_threads

def burn():
    total = 0
    for i in range(3_000_000):
        total += i

def waits():
    threading.Event().wait(0.3)

def process(folder):
    profile_threads(folder)
    threads = [threading.Thread(target=burn), threading.Thread(target=waits)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.exit(0)

if __name__ == "__main__":
    child = multiprocessing.get_context("fork").Process(target=process, args=(sys.argv[1],))
    child.start()
    child.join()
    print(child.pid)
"""


def profiled_functions(folder: Path) -> dict[str, float]:
    (written,) = folder.glob("worker-*.prof")
    stats = pstats.Stats(str(written)).stats  # type: ignore[attr-defined]
    return {name: row[2] for (_, _, name), row in stats.items()}


def test_child_process_writes_its_threads_cpu(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout  # fmt: skip
    assert (tmp_path / f"worker-{out.strip()}.prof").exists()
    tottime = profiled_functions(tmp_path)
    assert tottime["burn"] > 0.05  # CPU spent in a thread started after the switch
    assert tottime.get("waits", 0.0) < 0.05  # a thread's wait costs no CPU time
