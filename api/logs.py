"""Structured logs: one JSON object per line, with call and workspace ids when known.

Invariant: one format per process. `configure_logging` owns the root logger, and every
library logs through it: `outdial api` starts uvicorn without a logging config of its own,
so uvicorn's server, error and access lines are JSON lines like the rest (an access line
also carries `method`, `path`, `status` and `client`).

Invariant: no line carries an integration token. `HookTokenRedaction` rewrites every
`/hooks/<token>` in a record's message and arguments to `/hooks/<redacted>` before any
handler sees it: on uvicorn's access and error loggers (whatever handlers a uvicorn log
config gives them) and on the root handler (every line that propagates there); the root
handler's formatters redact their whole output too, tracebacks included.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from api.security import HOOKS_PREFIX

# Extra attributes worth carrying into every line that has them.
CONTEXT_FIELDS = ("call_id", "workspace_id", "room", "job_id", "event", "status")
# uvicorn's access record: its message's arguments, in this order.
ACCESS_LOGGER = "uvicorn.access"
ERROR_LOGGER = "uvicorn.error"
ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


# The path segment after /hooks/ (up to the next /, ?, # or space): the token, or text
# where a token would be.
_HOOK_SEGMENT = re.compile(re.escape(HOOKS_PREFIX) + r"[^/?#\s\"]+")
REDACTED_HOOK = HOOKS_PREFIX + "<redacted>"


def redact_hook_tokens(text: str) -> str:
    return _HOOK_SEGMENT.sub(REDACTED_HOOK, text)


def _redacted(value: object) -> object:
    return redact_hook_tokens(value) if isinstance(value, str) else value


class HookTokenRedaction(logging.Filter):
    """Redacts integration tokens in a record (message and arguments); drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_hook_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {name: _redacted(arg) for name, arg in record.args.items()}
        return True


def install_hook_token_redaction(logger: logging.Logger | logging.Handler) -> None:
    """Adds the redaction filter to `logger` once."""
    if not any(isinstance(known, HookTokenRedaction) for known in logger.filters):
        logger.addFilter(HookTokenRedaction())


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
        return redact_hook_tokens(json.dumps(line, default=str))


class TextFormatter(logging.Formatter):
    """Plain lines, integration tokens redacted (a traceback's text included)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_hook_tokens(super().format(record))


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    install_hook_token_redaction(handler)
    # A filter on a logger sees only its own records: uvicorn's access lines are logged
    # there, and may go to a handler of their own (uvicorn's default log config).
    for name in (ACCESS_LOGGER, ERROR_LOGGER):
        install_hook_token_redaction(logging.getLogger(name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
