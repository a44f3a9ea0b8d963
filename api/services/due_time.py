"""When a call is due: its asked time (`scheduled_at`, `delay_seconds`) moved to the next
opening of its call window.

Invariant: a call is never started outside its window. The accept and a move store a due
time at which the window is open for at least the agent-ready timeout (so the dial, sent
within that timeout or never, lands inside it); the dispatcher checks the same again when
it starts (`reopening`), since a call may be claimed or dispatched late. A call due
now whose window is open is not scheduled at all.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from api.errors import ApiError
from api.services.call_windows import (
    CallWindow,
    UnknownZoneError,
    next_opening,
    window_from_fields,
    window_from_json,
    window_zones,
)
from api.store.agents import AgentCallWindow
from api.store.scheduled_calls import Due

logger = logging.getLogger("outdial.api")


def chosen_window(
    requested: CallWindow | None,
    agent_window: AgentCallWindow | None,
    workspace_window: str | None,
) -> CallWindow | None:
    """The call's window: the request's, else its agent's, else the workspace's default,
    else none. A stored one that does not parse (damage: the API validated it) is logged
    and passed over, like an absent one."""
    if requested is not None:
        return requested
    try:
        if agent_window is not None:
            return window_from_fields(asdict(agent_window))
        if workspace_window is not None:
            return window_from_json(workspace_window)
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("a stored call window does not parse, ignored: %s", exc)
    return None


def _instant(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def due_in_window(
    window: CallWindow, to: str, due: Due | None, now_ms: int, needed_seconds: int
) -> Due | None:
    """`due` (None: now) moved to the window's next opening when it is closed then; None
    when the call may start now. CALL_WINDOW_ZONE_UNKNOWN / CALL_WINDOW_NEVER_OPEN (422)
    when the window cannot be used for `to`."""
    try:
        zones = window_zones(window, to)
    except UnknownZoneError as exc:
        raise ApiError(422, "CALL_WINDOW_ZONE_UNKNOWN", str(exc), {"to": to}) from exc
    asked_ms = due.at_ms if due is not None else now_ms
    needed = timedelta(seconds=needed_seconds)
    opening = next_opening(window, zones, _instant(asked_ms), needed)
    if opening is None:
        raise ApiError(
            422,
            "CALL_WINDOW_NEVER_OPEN",
            f"the call window is never open in all of the callee's zones for {needed_seconds} s"
            " (the time a dial may take)",
            {"to": to, "zones": [str(tz) for tz in zones]},
        )
    opening_ms = math.ceil(opening.timestamp() * 1000)
    if opening_ms <= asked_ms:
        return due
    return Due(opening_ms, "call_window")


def reopening(window: CallWindow, to: str, now_ms: int, needed_seconds: int) -> Due | None:
    """None when a call to `to` may start at `now_ms` (its window open for
    `needed_seconds`); else when it may (its next opening). A window that cannot be used
    any more (its zone unknown, never open) holds: it was checked at the accept, and a
    call is not held forever by data that changed since."""
    try:
        return due_in_window(window, to, None, now_ms, needed_seconds)
    except ApiError:
        return None
