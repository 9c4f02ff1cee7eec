"""The calendar arithmetic of recurring rules (app.core.calendar): examples and properties."""

from __future__ import annotations

import calendar as stdlib_calendar
import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.calendar import (
    EARLIEST,
    LATEST,
    MAX_COUNT,
    Schedule,
    ScheduleError,
    check,
    due,
    first_after,
    limit,
    nominal,
    occurrence,
    parse_date,
)

D = dt.date


def dates(schedule: Schedule, most: int = 400) -> list[dt.date]:
    out = []
    for n in itertools.count():
        day = occurrence(schedule, n)
        if day is None or n >= most:
            return out
        out.append(day)
    raise AssertionError("unreachable")


# ---- examples ------------------------------------------------------------------------------------


def test_monthly_from_the_31st_clamps_and_returns_to_the_anchor() -> None:
    s = Schedule(every="month", interval=1, start_date=D(2027, 1, 31), count=5)
    assert dates(s) == [D(2027, 1, 31), D(2027, 2, 28), D(2027, 3, 31), D(2027, 4, 30), D(2027, 5, 31)]
    leap = Schedule(every="month", interval=1, start_date=D(2028, 1, 31), count=3)
    assert dates(leap) == [D(2028, 1, 31), D(2028, 2, 29), D(2028, 3, 31)]


def test_monthly_with_an_interval() -> None:
    s = Schedule(every="month", interval=3, start_date=D(2027, 11, 30), count=4)
    assert dates(s) == [D(2027, 11, 30), D(2028, 2, 29), D(2028, 5, 30), D(2028, 8, 30)]


def test_yearly_on_29_february() -> None:
    s = Schedule(every="year", interval=1, start_date=D(2028, 2, 29), count=5)
    assert dates(s) == [D(2028, 2, 29), D(2029, 2, 28), D(2030, 2, 28), D(2031, 2, 28), D(2032, 2, 29)]
    century = Schedule(every="year", interval=100, start_date=D(2000, 2, 29), count=2)
    assert dates(century) == [D(2000, 2, 29), D(2100, 2, 28)]  # 2100 is not a leap year


def test_daily_and_weekly() -> None:
    assert dates(Schedule(every="day", interval=2, start_date=D(2028, 2, 27), count=3)) == [
        D(2028, 2, 27), D(2028, 2, 29), D(2028, 3, 2)
    ]
    assert dates(Schedule(every="week", interval=1, start_date=D(2026, 12, 28), end_date=D(2027, 1, 11))) == [
        D(2026, 12, 28), D(2027, 1, 4), D(2027, 1, 11)
    ]


def test_end_date_and_2999_end_a_series() -> None:
    s = Schedule(every="month", interval=1, start_date=D(2027, 1, 31), end_date=D(2027, 4, 29))
    assert dates(s) == [D(2027, 1, 31), D(2027, 2, 28), D(2027, 3, 31)]
    assert limit(s) == 3 and occurrence(s, 3) is None
    last = Schedule(every="year", interval=1, start_date=D(2998, 12, 31))
    assert dates(last) == [D(2998, 12, 31), D(2999, 12, 31)]


def test_first_after_and_due() -> None:
    s = Schedule(every="month", interval=1, start_date=D(2027, 1, 31))
    assert first_after(s, None) == 0 and first_after(s, D(2027, 1, 30)) == 0
    assert first_after(s, D(2027, 1, 31)) == 1 and first_after(s, D(2027, 2, 28)) == 2
    assert due(s, from_index=0, today=D(2027, 3, 31)) == 3
    assert due(s, from_index=2, today=D(2027, 3, 30)) == 0
    assert due(s, from_index=0, today=D(2026, 1, 1)) == 0


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        (Schedule(every="fortnight", interval=1, start_date=D(2027, 1, 1)), "every"),
        (Schedule(every="day", interval=0, start_date=D(2027, 1, 1)), "interval"),
        (Schedule(every="day", interval=367, start_date=D(2027, 1, 1)), "interval"),
        (Schedule(every="day", interval=1, start_date=D(1899, 12, 31)), "start_date"),
        (Schedule(every="day", interval=1, start_date=D(2027, 1, 1), end_date=D(3000, 1, 1)), "end_date"),
        (Schedule(every="day", interval=1, start_date=D(2027, 1, 2), end_date=D(2027, 1, 1)), "end_date"),
        (Schedule(every="day", interval=1, start_date=D(2027, 1, 1), count=0), "count"),
        (Schedule(every="day", interval=1, start_date=D(2027, 1, 1), count=MAX_COUNT + 1), "count"),
        (Schedule(every="day", interval=1, start_date=D(2027, 1, 1), end_date=D(2027, 2, 1), count=2), "count"),
    ],
)
def test_bad_schedules_name_their_field(schedule: Schedule, field: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        check(schedule)
    assert caught.value.field == field


@pytest.mark.parametrize("text", ["2027-02-29", "1899-12-31", "3000-01-01", "2027-1-01", "20270101", "x"])
def test_parse_date_refuses(text: str) -> None:
    with pytest.raises(ScheduleError):
        parse_date("start_date", text)


# ---- properties ----------------------------------------------------------------------------------

days = st.dates(min_value=EARLIEST, max_value=LATEST)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    every = draw(st.sampled_from(["day", "week", "month", "year"]))
    interval = draw(st.integers(1, 366))
    start = draw(days)
    end_kind = draw(st.sampled_from(["none", "count", "end_date"]))
    count = draw(st.integers(1, MAX_COUNT)) if end_kind == "count" else None
    end = draw(st.dates(min_value=start, max_value=LATEST)) if end_kind == "end_date" else None
    s = Schedule(every=every, interval=interval, start_date=start, end_date=end, count=count)
    check(s)
    return s


@settings(max_examples=300, deadline=None)
@given(schedules())
def test_occurrences_strictly_increase_within_bounds(s: Schedule) -> None:
    got = dates(s, most=300)
    assert got, "every valid schedule has its start_date"
    assert got[0] == s.start_date
    assert all(a < b for a, b in itertools.pairwise(got))
    assert all(EARLIEST <= d <= LATEST for d in got)
    if s.end_date is not None:
        assert all(d <= s.end_date for d in got)


@settings(max_examples=300, deadline=None)
@given(schedules())
def test_count_gives_exactly_count_unless_2999_comes_first(s: Schedule) -> None:
    n = limit(s)
    assert occurrence(s, n) is None and (n == 0 or occurrence(s, n - 1) is not None)
    if s.count is not None:
        unbounded = Schedule(every=s.every, interval=s.interval, start_date=s.start_date)
        assert n == min(s.count, limit(unbounded))
        if nominal(s, s.count - 1) is not None:
            assert n == s.count
    if s.end_date is not None:
        following = nominal(s, n)
        assert following is None or following > s.end_date


@settings(max_examples=500, deadline=None)
@given(schedules(), st.data())
def test_clamped_days(s: Schedule, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, limit(s) - 1))  # an occurrence of the series
    day = occurrence(s, n)
    assert day is not None
    if s.every in ("day", "week"):
        unit = 7 if s.every == "week" else 1
        assert (day - s.start_date).days == n * s.interval * unit
        return
    months = n * s.interval * (12 if s.every == "year" else 1)
    assert (day.year * 12 + day.month) - (s.start_date.year * 12 + s.start_date.month) == months
    assert day.day == min(s.start_date.day, stdlib_calendar.monthrange(day.year, day.month)[1])


@settings(max_examples=300, deadline=None)
@given(schedules(), days)
def test_first_after_is_the_first_date_after(s: Schedule, day: dt.date) -> None:
    n = first_after(s, day)
    after = nominal(s, n)
    assert after is None or after > day
    if n > 0:
        before = nominal(s, n - 1)
        assert before is not None and before <= day
    if limit(s) <= 2_000:
        assert due(s, from_index=0, today=day) == sum(1 for d in dates(s, most=2_000) if d <= day)
