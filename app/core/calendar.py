"""Pure: the dates of a recurring schedule. No I/O, no clock.

Occurrence n (0-based) of a schedule is `start_date + n * interval` days, weeks, months or years.
Monthly and yearly rules keep the start date's day as their anchor and fall on the month's last day
when the month is shorter: monthly from 31 January gives 28 (or 29) February, then 31 March; yearly
from 29 February gives 28 February in common years and 29 February again in leap years.

A series ends after `count` occurrences, after `end_date`, or after 2999-12-31 (the last date an
expense may carry), whichever comes first: occurrences are the indices 0 <= n < `limit(schedule)`,
strictly increasing. Dates are UTC calendar dates.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

EVERY = ("day", "week", "month", "year")
MAX_INTERVAL = 366
MAX_COUNT = 10_000
EARLIEST, LATEST = dt.date(1900, 1, 1), dt.date(2999, 12, 31)


class ScheduleError(ValueError):
    """A schedule that breaks a rule; `field` names the schedule member at fault."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(msg)
        self.field = field
        self.msg = msg


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    every: str
    interval: int
    start_date: dt.date
    end_date: dt.date | None = None
    count: int | None = None


def check(schedule: Schedule) -> None:
    """Every rule of a schedule; ScheduleError naming the field otherwise."""
    if schedule.every not in EVERY:
        raise ScheduleError("every", f"every must be one of {', '.join(EVERY)}")
    if not 1 <= schedule.interval <= MAX_INTERVAL:
        raise ScheduleError("interval", f"interval must be 1..{MAX_INTERVAL}")
    for field, day in (("start_date", schedule.start_date), ("end_date", schedule.end_date)):
        if day is not None and not EARLIEST <= day <= LATEST:
            raise ScheduleError(field, f"{field} must be between {EARLIEST} and {LATEST}")
    if schedule.count is not None and not 1 <= schedule.count <= MAX_COUNT:
        raise ScheduleError("count", f"count must be 1..{MAX_COUNT}")
    if schedule.count is not None and schedule.end_date is not None:
        raise ScheduleError("count", "give count or end_date, not both (RFC 5545)")
    if schedule.end_date is not None and schedule.end_date < schedule.start_date:
        raise ScheduleError("end_date", "end_date must not be before start_date")


def parse_date(field: str, text: str) -> dt.date:
    """A `YYYY-MM-DD` date between 1900-01-01 and 2999-12-31; ScheduleError otherwise."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ScheduleError(field, f"{field} must be a calendar date YYYY-MM-DD") from None
    if len(text) != 10 or not EARLIEST <= day <= LATEST:
        raise ScheduleError(field, f"{field} must be a calendar date YYYY-MM-DD between {EARLIEST} and {LATEST}")
    return day


def _in_month(year: int, month: int, anchor: int) -> dt.date:
    return dt.date(year, month, min(anchor, calendar.monthrange(year, month)[1]))


def nominal(schedule: Schedule, n: int) -> dt.date | None:
    """Occurrence n without count or end_date; None past 2999-12-31."""
    start, step = schedule.start_date, n * schedule.interval
    if schedule.every in ("day", "week"):
        ordinal = start.toordinal() + step * (7 if schedule.every == "week" else 1)
        return dt.date.fromordinal(ordinal) if ordinal <= LATEST.toordinal() else None
    if schedule.every == "month":
        year, month0 = divmod(start.year * 12 + start.month - 1 + step, 12)
        return _in_month(year, month0 + 1, start.day) if year <= LATEST.year else None
    year = start.year + step
    return _in_month(year, start.month, start.day) if year <= LATEST.year else None


def _units_between(schedule: Schedule, day: dt.date) -> int:
    """Whole days, weeks, months or years from start_date to day (day >= start_date), rounded down
    for days and weeks, by calendar month or year otherwise (an estimate that never overshoots)."""
    start = schedule.start_date
    if schedule.every == "day":
        return day.toordinal() - start.toordinal()
    if schedule.every == "week":
        return (day.toordinal() - start.toordinal()) // 7
    if schedule.every == "month":
        return (day.year * 12 + day.month) - (start.year * 12 + start.month)
    return day.year - start.year


def first_after(schedule: Schedule, day: dt.date | None) -> int:
    """The smallest n whose nominal date is after day (0 when day is None or before start_date).
    It may be past the series' end: compare with limit()."""
    if day is None or day < schedule.start_date:
        return 0
    n = _units_between(schedule, day) // schedule.interval
    while (date := nominal(schedule, n)) is not None and date <= day:
        n += 1
    return n


def limit(schedule: Schedule) -> int:
    """How many occurrences the series has: indices 0..limit-1."""
    bound = first_after(schedule, schedule.end_date or LATEST)
    return bound if schedule.count is None else min(bound, schedule.count)


def occurrence(schedule: Schedule, n: int) -> dt.date | None:
    """Occurrence n, or None once the series has ended (count, end_date or 2999-12-31)."""
    if n < 0:
        raise ValueError("occurrence indices start at 0")
    if n >= limit(schedule):
        return None
    return nominal(schedule, n)


def due(schedule: Schedule, *, from_index: int, today: dt.date) -> int:
    """How many occurrences from from_index on fall on or before today."""
    return max(0, min(limit(schedule), first_after(schedule, today)) - from_index)
