"""An opt-in CPU profile of a worker process, for finding its ceiling (bench/RESULTS.md).

With `OUTDIAL_WORKER_PROFILE_DIR` set, every thread the process starts from then on (the
consumer, the worker threads, the event loop, the schedules) gets its own cProfile timed
by that thread's CPU clock, so time spent waiting costs nothing in it; at the process's
exit they are merged into `<dir>/worker-<pid>.prof` (read it with `python -m pstats`).
Unset (the default), nothing is installed: the worker runs unprofiled.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import threading
import time
from multiprocessing import util
from pathlib import Path
from types import FrameType
from typing import Any

_profiles: list[cProfile.Profile] = []
_guard = threading.Lock()


def _profile_this_thread(frame: FrameType, event: str, arg: Any) -> None:
    """A new thread's first profile event: hand the thread to its own cProfile."""
    sys.setprofile(None)
    profile = cProfile.Profile(time.thread_time)
    with _guard:
        _profiles.append(profile)
    profile.enable()


def _write(path: Path) -> None:
    with _guard:
        profiles = list(_profiles)
    if not profiles:
        return
    merged = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        merged.add(profile)
    merged.dump_stats(path)


def profile_threads(directory: str) -> None:
    """Profile every thread started from now on; write the merged profile at exit."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    threading.setprofile(_profile_this_thread)
    # A multiprocessing child (Dramatiq's worker processes) leaves through os._exit, past
    # atexit; its finalizers run there, and also at a plain interpreter's exit.
    util.Finalize(None, _write, args=(folder / f"worker-{os.getpid()}.prof",), exitpriority=10)
