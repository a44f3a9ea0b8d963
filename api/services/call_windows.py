"""Call windows: the hours in which a call may start, in the callee's time zones.

Pure (no I/O, no clock): every function takes the instant it reasons about.

A window is listed days, a start and an end wall-clock time, and a zone (`"callee"`: the
zones `phonenumbers` gives for the destination; else one IANA zone). Its rules:
- An opening starts on a listed day at `start` and closes at `end` the same day; when
  `start > end` the window crosses midnight and closes at `end` on the next day (so a
  Friday 22:00-06:00 window runs into Saturday morning, whether or not Saturday is listed).
- Wall-clock times are resolved in the zone with its DST rules: a time that does not exist
  that day (spring forward) is the first instant after the gap; a time that exists twice
  (fall back) is its first occurrence, so a window opens once.
- With several zones the window must hold in all of them at once: the openings are the
  intersection of each zone's openings.
- `next_opening(window, zones, at, needed)` is the first instant at or after `at` from
  which the window stays open for `needed` (the dispatcher passes the agent-ready timeout,
  so the dial, which happens within it or never, lands inside the window); None when no
  such instant exists within `HORIZON_DAYS` (e.g. zones whose openings never overlap).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from phonenumbers import timezone as phone_timezones

DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CALLEE = "callee"
# Openings are looked for this far ahead: a week repeats the days, the rest covers
# midnight crossings, zone offsets and a DST change.
HORIZON_DAYS = 15
# `phonenumbers` answers this for a number whose zone it does not know.
_UNKNOWN_ZONE = "Etc/Unknown"


@dataclass(frozen=True, slots=True)
class CallWindow:
    """When calls may start. `days` are weekday numbers (Monday 0) of the opening's start."""

    days: frozenset[int]
    start: time
    end: time
    timezone: str  # CALLEE or an IANA zone name

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("a call window's start and end must differ")
        if not self.days or not self.days <= set(range(7)):
            raise ValueError("a call window needs days between 0 (Monday) and 6")


class UnknownZoneError(ValueError):
    """The zones of a window cannot be known (a number `phonenumbers` has no zone for)."""


@cache
def _zone_names() -> frozenset[str]:
    # `localtime` is the host's own zone file where the system database is read
    return frozenset(available_timezones()) - {"localtime"}


@cache
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValueError when there is no such zone (only the database's
    names: not the host's `localtime`, nor a path)."""
    if name not in _zone_names():
        raise ValueError(f"unknown time zone {name!r}")
    return ZoneInfo(name)


def window_zones(window: CallWindow, e164: str) -> tuple[ZoneInfo, ...]:
    """The zones `window` must hold in for a call to `e164`; UnknownZoneError when it
    follows the callee and the number's zone is unknown (a window is never guessed)."""
    if window.timezone != CALLEE:
        return (zone(window.timezone),)
    names = phone_timezones.time_zones_for_number(phonenumbers.parse(e164))
    known = [name for name in names if name != _UNKNOWN_ZONE]
    if not known:
        raise UnknownZoneError(f"the time zone of {e164} is unknown: give an IANA timezone")
    return tuple(zone(name) for name in sorted(set(known)))


def _instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The instant `day` at `wall` names in `tz`: its first occurrence when it exists twice,
    the first instant after the gap when it does not exist."""
    local = datetime.combine(day, wall, tzinfo=tz)
    first = local.replace(fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None):
        # it exists; with fold=0 zoneinfo takes the first of two occurrences
        return first
    # In a gap: fold=1 resolves with the offset after the change (an instant before it),
    # fold=0 with the one before (after it). The change is in between: find its instant,
    # the first whose wall time is at or past `wall` (changes fall on whole seconds).
    low, high = local.replace(fold=1).astimezone(UTC), first
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= local.replace(tzinfo=None):
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0) if high.microsecond else high


def _openings(window: CallWindow, tz: ZoneInfo, at: datetime) -> list[tuple[datetime, datetime]]:
    """The window's openings in `tz` that may matter from `at` on, in order."""
    first_day = at.astimezone(tz).date() - timedelta(days=1)
    found = []
    for offset in range(HORIZON_DAYS + 1):
        day = first_day + timedelta(days=offset)
        if day.weekday() not in window.days:
            continue
        end_day = day if window.start < window.end else day + timedelta(days=1)
        opens, closes = _instant(day, window.start, tz), _instant(end_day, window.end, tz)
        if closes > opens:
            found.append((opens, closes))
    return found


def _intersect(
    left: Sequence[tuple[datetime, datetime]], right: Sequence[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    both = []
    i = j = 0
    while i < len(left) and j < len(right):
        opens, closes = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
        if opens < closes:
            both.append((opens, closes))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return both


def _merged(openings: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Openings that touch or overlap joined (a window whose days run into each other)."""
    merged: list[tuple[datetime, datetime]] = []
    for opens, closes in sorted(openings):
        if merged and opens <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], closes))
        else:
            merged.append((opens, closes))
    return merged


def next_opening(
    window: CallWindow,
    zones: Sequence[ZoneInfo],
    at: datetime,
    needed: timedelta = timedelta(0),
) -> datetime | None:
    """The first instant at or after `at` (aware) from which `window` holds in every zone
    of `zones` for at least `needed`; `at` itself when it is open now for that long."""
    if at.tzinfo is None:
        raise ValueError("`at` must be an aware datetime")
    common: list[tuple[datetime, datetime]] | None = None
    for tz in zones:
        openings = _merged(_openings(window, tz, at))
        common = openings if common is None else _intersect(common, openings)
    for opens, closes in common or []:
        start = max(opens, at)
        if start < closes and start + needed <= closes:
            return start
    return None


def window_to_json(window: CallWindow) -> str:
    """The stored form of a window (the call record's `call_window` field)."""
    return json.dumps(
        {
            "days": [DAY_NAMES[day] for day in sorted(window.days)],
            "start": window.start.isoformat(timespec="seconds"),
            "end": window.end.isoformat(timespec="seconds"),
            "timezone": window.timezone,
        },
        separators=(",", ":"),
    )


def window_from_json(raw: str) -> CallWindow:
    """A window in its stored form; ValueError (or KeyError) when it does not parse."""
    return window_from_fields(json.loads(raw))


def window_from_fields(found: dict[str, Any]) -> CallWindow:
    """A window from its fields (`days`, `start`, `end`, `timezone`), as an agent's
    document holds them; ValueError (or KeyError) when they do not parse."""
    return CallWindow(
        days=frozenset(DAY_NAMES.index(day) for day in found["days"]),
        start=time.fromisoformat(found["start"]),
        end=time.fromisoformat(found["end"]),
        timezone=found["timezone"],
    )
