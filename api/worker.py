"""Entry module of the Dramatiq worker: `dramatiq api.worker` (or `outdial worker`).

Importing it builds the broker from the environment, then registers the actors.
"""

from __future__ import annotations

import dramatiq

from api.jobs.broker import build_broker
from api.jobs.profiling import profile_threads
from api.logs import configure_logging
from api.settings import get_settings

settings = get_settings()
configure_logging(settings.log_level, settings.log_json)
if settings.worker_profile_dir:
    profile_threads(settings.worker_profile_dir)  # before the broker starts any thread
broker = build_broker(settings)
dramatiq.set_broker(broker)

# actors bind to the broker set above
from api.jobs import dispatch, reconcile, relay  # noqa: E402

__all__ = ["broker", "dispatch", "reconcile", "relay"]
