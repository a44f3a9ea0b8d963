"""The call window math (api/services/call_windows.py): days, midnight crossing, DST
spring-forward and fall-back days, a number with several zones, an explicit IANA zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from api.services.call_windows import (
    CallWindow,
    UnknownZoneError,
    next_opening,
    window_zones,
)

NEW_YORK = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")
WEEKDAYS = frozenset(range(5))


def _window(days: frozenset[int], start: str, end: str, tz: str = "callee") -> CallWindow:
    return CallWindow(days, time.fromisoformat(start), time.fromisoformat(end), tz)


def _local(tz: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=tz)  # type: ignore[misc]


def is_open_for(
    window: CallWindow, zones: list[ZoneInfo], at: datetime, duration: timedelta
) -> bool:
    """Whether `window` is open in every zone at `at` and stays open for `duration`."""
    return next_opening(window, zones, at, duration) == at


# 2026-11-25 is a Wednesday, 2026-11-28 a Saturday, 2026-11-30 a Monday.
@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ((2026, 11, 25, 10, 0), (2026, 11, 25, 10, 0)),  # open: now
        ((2026, 11, 25, 8, 0), (2026, 11, 25, 9, 0)),  # before the start: today's
        ((2026, 11, 25, 17, 0), (2026, 11, 26, 9, 0)),  # the end is closed
        ((2026, 11, 28, 10, 0), (2026, 11, 30, 9, 0)),  # a weekend: Monday
    ],
)
def test_listed_days_and_hours(at: tuple[int, ...], expected: tuple[int, ...]) -> None:
    window = _window(WEEKDAYS, "09:00", "17:00", "America/New_York")
    found = next_opening(window, [NEW_YORK], _local(NEW_YORK, *at))
    assert found == _local(NEW_YORK, *expected)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ((2026, 11, 27, 21, 0), (2026, 11, 27, 22, 0)),  # Friday evening: at 22:00
        ((2026, 11, 28, 3, 0), (2026, 11, 28, 3, 0)),  # Saturday night: still Friday's
        ((2026, 11, 28, 6, 0), (2026, 12, 4, 22, 0)),  # closed at 06:00: next Friday
    ],
)
def test_a_window_crossing_midnight_runs_into_the_next_day(
    at: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    window = _window(frozenset({4}), "22:00", "06:00", "Europe/Paris")
    assert next_opening(window, [PARIS], _local(PARIS, *at)) == _local(PARIS, *expected)


def test_a_start_inside_the_spring_forward_gap_opens_at_the_first_instant_after() -> None:
    # 2026-03-08 (a Sunday) New York skips 02:00-03:00 EST: 07:00 UTC is 03:00 EDT.
    window = _window(frozenset({6}), "02:30", "05:00", "America/New_York")
    at = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    assert next_opening(window, [NEW_YORK], at) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    just_before = datetime(2026, 3, 8, 6, 59, 59, tzinfo=UTC)
    assert not is_open_for(window, [NEW_YORK], just_before, timedelta(0))


def test_the_fall_back_day_opens_once() -> None:
    # 2026-11-01 (a Sunday) New York lives 01:00-02:00 twice: EDT (05:00 UTC) then EST.
    window = _window(frozenset({6}), "01:30", "01:45", "America/New_York")
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert next_opening(window, [NEW_YORK], datetime(2026, 11, 1, 4, 0, tzinfo=UTC)) == first
    # 01:31 EST, the second time the wall clock shows it: no second opening that day
    again = datetime(2026, 11, 1, 6, 31, tzinfo=UTC)
    next_week = datetime(2026, 11, 8, 6, 30, tzinfo=UTC)  # 01:30 EST
    assert next_opening(window, [NEW_YORK], again) == next_week


def test_a_number_with_several_zones_waits_for_the_window_to_hold_in_all() -> None:
    window = _window(frozenset(range(7)), "09:00", "20:00")
    zones = window_zones(window, "+61412345678")  # an Australian mobile: 8 zones
    assert len(zones) > 1
    at = datetime(2027, 1, 4, 20, 0, tzinfo=UTC)
    # the latest 09:00 of them all (Lord Howe and Sydney), if all still open then
    expected = max(datetime(2027, 1, 5, 9, 0, tzinfo=tz) for tz in zones)
    assert next_opening(window, zones, at) == expected
    assert all(expected.astimezone(tz).hour < 20 for tz in zones)
    assert not is_open_for(window, zones, expected - timedelta(seconds=1), timedelta(0))
    # ... and it closes at the earliest 20:00 (Cocos)
    closes = min(datetime(2027, 1, 5, 20, 0, tzinfo=tz) for tz in zones)
    assert is_open_for(window, zones, closes - timedelta(minutes=1), timedelta(minutes=1))
    assert not is_open_for(window, zones, closes, timedelta(0))


def test_zones_that_never_overlap_have_no_opening() -> None:
    window = _window(frozenset(range(7)), "09:00", "10:00")
    zones = [ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Pacific/Pago_Pago")]  # 25 h apart
    assert next_opening(window, zones, datetime(2026, 11, 25, tzinfo=UTC)) is None


def test_an_explicit_iana_zone_is_used_whatever_the_number() -> None:
    window = _window(WEEKDAYS, "09:00", "17:00", "Asia/Kolkata")
    (kolkata,) = window_zones(window, "+14155552671")
    # Wednesday 03:00 UTC is 08:30 in Kolkata (+05:30)
    at = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    assert next_opening(window, [kolkata], at) == datetime(2026, 11, 25, 3, 30, tzinfo=UTC)


def test_the_callee_zone_of_a_one_zone_number() -> None:
    window = _window(WEEKDAYS, "09:00", "17:00")
    assert window_zones(window, "+14155552671") == (ZoneInfo("America/Los_Angeles"),)


def test_a_number_without_a_known_zone_is_refused_not_guessed() -> None:
    with pytest.raises(UnknownZoneError):
        window_zones(_window(WEEKDAYS, "09:00", "17:00"), "+80012345678")


def test_an_opening_must_last_as_long_as_needed() -> None:
    window = _window(WEEKDAYS, "09:00", "17:00", "America/New_York")
    at = _local(NEW_YORK, 2026, 11, 25, 16, 50)
    assert is_open_for(window, [NEW_YORK], at, timedelta(minutes=10))
    assert not is_open_for(window, [NEW_YORK], at, timedelta(minutes=11))
    later = next_opening(window, [NEW_YORK], at, timedelta(minutes=11))
    assert later == _local(NEW_YORK, 2026, 11, 26, 9, 0)


@pytest.mark.parametrize(
    ("start", "end", "days"), [("09:00", "09:00", WEEKDAYS), ("09:00", "10:00", frozenset())]
)
def test_an_empty_window_is_refused(start: str, end: str, days: frozenset[int]) -> None:
    with pytest.raises(ValueError):
        _window(days, start, end, "UTC")


def test_a_naive_instant_is_refused() -> None:
    window = _window(WEEKDAYS, "09:00", "17:00", "UTC")
    with pytest.raises(ValueError):
        next_opening(window, [ZoneInfo("UTC")], datetime(2026, 11, 25, 10, 0))
