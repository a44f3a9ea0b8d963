"""Structured logs: one JSON object per line, with call and workspace ids when known.

Invariant: one format per process. `configure_logging` owns the root logger, and every
library logs through it: `outdial api` starts uvicorn without a logging config of its own,
so uvicorn's server, error and access lines are JSON lines like the rest (an access line
also carries `method`, `path`, `status` and `client`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# Extra attributes worth carrying into every line that has them.
CONTEXT_FIELDS = ("call_id", "workspace_id", "room", "job_id", "event", "status")
# uvicorn's access record: its message's arguments, in this order.
ACCESS_LOGGER = "uvicorn.access"
ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.name == ACCESS_LOGGER and isinstance(record.args, tuple):
            line.update(zip(ACCESS_FIELDS, record.args, strict=False))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
