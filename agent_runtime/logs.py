"""The worker's log lines: JSON objects in `start`, readable text in `dev`.

Job processes hand their records to the worker process (livekit-agents forwards them), so
this one configuration formats every line of every call. Every extra attribute of a record
is kept: a call's lines carry the `call_id` and `workspace_id` its job set, and livekit's
`job_id` and `room`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from livekit.agents import Plugin

# What every LogRecord has; anything else on a record was passed as an extra field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Libraries that log each request at INFO: warnings only, unless configured otherwise.
_NOISY_LOGGERS = (
    "aiohttp.access",
    "anthropic",
    "httpcore",
    "httpx",
    "livekit",
    "openai",
    "urllib3.connectionpool",
    "websockets.client",
)


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(record).items()
        if name not in _RECORD_ATTRIBUTES and not name.startswith("_")
    }


class JsonLines(logging.Formatter):
    """One JSON object per line; values JSON cannot hold are written as their text."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "name": record.name,
            "message": record.getMessage(),
            "pid": record.process,
            **_extra_fields(record),
        }
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:  # a job process's record: its traceback arrives as text
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class ReadableLines(logging.Formatter):
    """`time level logger - message`, then the extra fields as JSON."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s - %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if extra := _extra_fields(record):
            return f"{text} {json.dumps(extra, default=str, ensure_ascii=False)}"
        return text


def configure_logging(level: str, *, readable: bool) -> None:
    """Root logs to stdout at `level`; livekit-agents and its plugins at `level` too, the
    chatty HTTP libraries at WARNING unless something set them already."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(ReadableLines() if readable else JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _NOISY_LOGGERS:
        noisy = logging.getLogger(name)
        if noisy.level == logging.NOTSET:
            noisy.setLevel(logging.WARNING)
    # below the `livekit` logger silenced above: the worker's own lifecycle (registered,
    # draining) is worth seeing
    loggers = [logging.getLogger("livekit.agents")]
    loggers += [plugin.logger for plugin in Plugin.registered_plugins if plugin.logger]
    for logger in loggers:
        if logger.level == logging.NOTSET:
            logger.setLevel(level.upper())
