"""The usage report: a range of UTC days, checked, and a workspace's days summed.

The store keeps one hash per workspace and day (`keys.usage`, written when each call ends,
`api/store/lua/lib/settle.lua`); this turns a `from`/`to` query into those days and back into
dates, minutes and totals.

Invariant: a report reads only what it shows, and at most `MAX_WORKSPACE_DAYS` of those
hashes in one request: a range is checked (`day_range`, `check_all_usage`) before anything
is read, so no query, however many workspaces there are, makes one unbounded read. It
never writes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from api.errors import ApiError
from api.schemas.billing import UsageDay, UsageReport, UsageTotal, WorkspaceUsage
from api.store.billing import DayUsage

DEFAULT_DAYS = 30
MAX_DAYS = 366
# Usage hashes one request may read (workspaces x days): a year of 273 workspaces.
MAX_WORKSPACE_DAYS = 100_000
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class DayRange:
    first: date
    last: date

    @property
    def first_day(self) -> int:
        return (self.first - _EPOCH).days

    @property
    def last_day(self) -> int:
        return (self.last - _EPOCH).days

    @property
    def count(self) -> int:
        return self.last_day - self.first_day + 1


def _parse(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value) if len(value) == 10 else _bad(name, value)
    except ValueError:
        return _bad(name, value)


def _bad(name: str, value: str) -> date:
    raise ApiError(
        422,
        "INVALID_DATE_RANGE",
        f"{name} must be a date YYYY-MM-DD",
        {"field": name, "value": value[:40]},
    )


def day_range(first: str | None, last: str | None, today: date | None = None) -> DayRange:
    """The days asked for (both ends included): `to` defaults to today (UTC), `from` to
    `DEFAULT_DAYS` days before it; INVALID_DATE_RANGE (422) for a date that does not parse,
    `from` after `to`, or more than `MAX_DAYS` days."""
    end = _parse("to", last) if last is not None else (today or datetime.now(UTC).date())
    start = _parse("from", first) if first is not None else end - timedelta(DEFAULT_DAYS - 1)
    if start > end or (end - start).days + 1 > MAX_DAYS:
        raise ApiError(
            422,
            "INVALID_DATE_RANGE",
            f"from must be on or before to, at most {MAX_DAYS} days",
            {"from": start.isoformat(), "to": end.isoformat()},
        )
    return DayRange(start, end)


def check_all_usage(workspaces: int, days: DayRange) -> None:
    """INVALID_DATE_RANGE (422) when every workspace's report over `days` would read more
    than `MAX_WORKSPACE_DAYS` usage hashes: the operator asks for fewer days at a time."""
    if workspaces * days.count > MAX_WORKSPACE_DAYS:
        raise ApiError(
            422,
            "INVALID_DATE_RANGE",
            f"{workspaces} workspaces x {days.count} days is over {MAX_WORKSPACE_DAYS:,} "
            "workspace-days: ask for fewer days at a time",
            {
                "from": days.first.isoformat(),
                "to": days.last.isoformat(),
                "workspaces": workspaces,
                "maxDays": MAX_WORKSPACE_DAYS // workspaces,
            },
        )


def _minutes(seconds: int) -> float:
    return round(seconds / 60, 2)


def usage_report(days: DayRange, rows: list[DayUsage]) -> UsageReport:
    outcomes: Counter[str] = Counter()
    for row in rows:
        outcomes.update(row.outcomes)
    billed = sum(row.billed_seconds for row in rows)
    return UsageReport(
        from_=days.first.isoformat(),
        to=days.last.isoformat(),
        days=[
            UsageDay(
                date=(_EPOCH + timedelta(row.day)).isoformat(),
                calls=row.calls,
                minutes=_minutes(row.billed_seconds),
                billed_seconds=row.billed_seconds,
                outcomes=row.outcomes,
            )
            for row in rows
        ],
        total=UsageTotal(
            calls=sum(row.calls for row in rows),
            minutes=_minutes(billed),
            billed_seconds=billed,
            outcomes=dict(outcomes),
        ),
    )


def workspace_usage(workspace_id: str, days: DayRange, rows: list[DayUsage]) -> WorkspaceUsage:
    report = usage_report(days, rows)
    return WorkspaceUsage(workspace_id=workspace_id, **report.model_dump())
