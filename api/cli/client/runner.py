"""How every HTTP command runs: its common options, its exit codes, its two outputs.

Exit codes: 0 done; 1 `call --wait` saw the call end other than `completed`; 2 the API
refused (its error as one line `outdial: <status> <CODE>: <message>` on stderr), or
credentials are missing, or an argument is not usable, or the login cannot be saved; 3 no
API (or not Outdial's) answered at the URL; 130 interrupted (Ctrl-C).
Output: readable tables by default; `--json` prints the API's JSON as it answered (one
object per line for followed events), for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from api.cli.client.config import ConfigError, resolve
from api.cli.client.http import Api, MissingCredentials, Refused, Unreachable

REFUSED = 2
UNREACHABLE = 3
INTERRUPTED = 130

Handler = Callable[[Api, argparse.Namespace], Awaitable[int]]


class UsageError(Exception):
    """An argument the command cannot use (exit 2, like argparse's own)."""


def common_options() -> argparse.ArgumentParser:
    """The options every HTTP command takes (after its name: `outdial calls list --json`)."""
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("API access")
    group.add_argument("--api-url", help="default OUTDIAL_API_URL, login, http://localhost:8000")
    group.add_argument("--workspace", help="workspace id (OUTDIAL_WORKSPACE_ID, login)")
    group.add_argument("--key", help="the workspace's API key (OUTDIAL_API_KEY, login)")
    group.add_argument("--admin-token", help="the operator's token (OUTDIAL_ADMIN_TOKEN)")
    group.add_argument("--json", action="store_true", help="print the API's JSON")
    return options


def fail(message: str) -> None:
    print(f"outdial: {message}", file=sys.stderr)


def command(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """The `outdial` handler that runs `handler` with an API session and maps failures to
    one stderr line and an exit code."""

    def run(args: argparse.Namespace) -> int:
        target = resolve(args)

        async def session() -> int:
            async with Api(target) as api:
                return await handler(api, args)

        return run_safely(lambda: asyncio.run(session()))

    return run


def run_safely(action: Callable[[], int]) -> int:
    try:
        return action()
    except Refused as exc:
        fail(str(exc))
        return REFUSED
    except (MissingCredentials, UsageError, ConfigError) as exc:
        fail(str(exc))
        return REFUSED
    except Unreachable as exc:
        fail(str(exc))
        return UNREACHABLE
    except KeyboardInterrupt:
        return INTERRUPTED


def read_argument(value: str, flag: str) -> str:
    """The argument, or the text of the file it names as `@path`."""
    if not value.startswith("@"):
        return value
    try:
        return Path(value[1:]).read_text()
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read {value[1:]}: {exc.strerror}") from exc


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[_text(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        padded = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(padded).rstrip())


def print_fields(fields: Sequence[tuple[str, Any]]) -> None:
    """One `name  value` line per field."""
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name.ljust(width)}  {_text(value)}")


def event_line(event: dict[str, Any]) -> str:
    """One followed event, readable: time, call, sequence, type, status, data."""
    data = _text(event.get("data") or {})
    return (
        f"{event.get('timestamp', '')}  {event.get('callId', '')}  "
        f"#{event.get('sequence', '?'):<3} {event.get('type', ''):<22} "
        f"{event.get('status', ''):<17} {data}"
    ).rstrip()


def pairs(values: list[str], flag: str) -> dict[str, str]:
    """`name=value` arguments as a map."""
    found: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise UsageError(f"{flag} takes name=value, not {value!r}")
        found[name] = text
    return found
