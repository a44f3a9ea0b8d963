"""Serves the worker's Prometheus metrics (the process registry) on its own port."""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.middleware import Middleware
from prometheus_client import Counter, start_http_server

logger = logging.getLogger("outdial.worker")

MESSAGES = Counter(
    "outdial_worker_messages_total", "Messages processed by actor and result", ["actor", "result"]
)


class WorkerMetrics(Middleware):
    def __init__(self, port: int) -> None:
        self.port = port

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if not self.port:
            return
        try:
            start_http_server(self.port)
        except OSError as error:  # e.g. several worker processes on one host
            logger.warning("worker metrics not served on port %d: %s", self.port, error)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.Message,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        MESSAGES.labels(message.actor_name, "error" if exception else "ok").inc()

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        MESSAGES.labels(message.actor_name, "skipped").inc()
