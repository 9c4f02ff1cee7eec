"""The export's fast renderers say exactly what the API's renderer says (property-tested on random rows)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from app.domain import expenses, settlements
from app.domain.export import (
    column_names,
    expense_effects,
    expense_json,
    record_of,
    safe_cell,
    settlement_json,
    settlement_record_of,
)

people = st.lists(st.uuids().map(str), min_size=1, max_size=6, unique=True)  # ids come as text from the database
ids = st.uuids().map(str)
times = st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2999, 1, 1), timezones=st.just(dt.UTC))
text = st.text(max_size=30).filter(lambda t: "\x00" not in t)


@st.composite
def rows(draw: st.DrawFn) -> tuple[Any, ...]:
    """A row of export._EXPENSES."""
    who = draw(people)
    currency, group_currency = draw(st.sampled_from(["USD", "JPY", "KWD"])), draw(st.sampled_from(["USD", "EUR"]))
    payers = [[u, draw(st.integers(1, 10**12))] for u in draw(st.lists(st.sampled_from(who), min_size=1,
                                                                       unique=True))]  # fmt: skip
    same = draw(st.integers(0, 10**12))  # an equal split's parts, or the one payer's amount
    owed = [[u, draw(st.sampled_from([same, draw(st.integers(0, 10**12))]))]
            for u in draw(st.lists(st.sampled_from(who), min_size=1, unique=True))]  # fmt: skip
    return (
        draw(ids), draw(text), currency, draw(st.integers(1, 10**12)), draw(st.none() | st.just("1.0850")),
        group_currency, draw(st.sampled_from([same, draw(st.integers(1, 10**12))])), orjson.dumps(payers).decode(),
        draw(st.sampled_from(["equal", "shares", "exact", "percentage"])), orjson.dumps(owed).decode(),
        draw(st.dates(min_value=dt.date(1900, 1, 1))), draw(st.none() | text), draw(st.none() | text),
        draw(st.integers(1, 1000)), draw(st.sampled_from(who)), draw(times), draw(st.sampled_from(who)),
        draw(st.none() | times),  # updated_at: NULL for an expense never edited
        draw(st.none() | times), draw(st.none() | ids),
    )  # fmt: skip


@st.composite
def versions(draw: st.DrawFn) -> list[Any]:
    """Superseded versions as stored (the fields the export reads of them; the rest passes through)."""
    def part() -> dict[str, str]:
        return {"user_id": draw(ids), "amount": "1.00"}

    return [
        {"version": v, "payers": [part()], "shares": [part(), part()], "created_by": draw(ids), "updated_by": draw(ids)}
        for v in range(1, draw(st.integers(0, 2)) + 1)
    ]


@given(rows(), versions(), ids)
def test_expense_json_is_render_of_the_record(row: tuple[Any, ...], older: list[Any], gid: str) -> None:
    cited: set[str] = set()
    want = {**expenses.render(record_of(row, gid)), "versions": older}
    assert orjson.loads(expense_json(row, older, cited, gid)) == want
    record = record_of(row, gid)
    in_versions = {u for doc in older for u in [p["user_id"] for p in doc["payers"] + doc["shares"]]
                   + [doc["created_by"], doc["updated_by"]]}  # fmt: skip
    assert cited == {str(u) for u, _ in record.payers + record.owed} | {row[14], row[16]} | in_versions


@given(st.tuples(ids, ids, ids, st.integers(1, 10**12), st.sampled_from(["USD", "JPY", "KWD"]), st.none() | text,
                 ids, times, st.none() | times), ids)  # fmt: skip
def test_settlement_json_is_render_of_the_record(row: tuple[Any, ...], gid: str) -> None:
    cited: set[str] = set()
    assert orjson.loads(settlement_json(row, cited, gid)) == settlements.render(settlement_record_of(row, gid))
    assert cited == {row[1], row[2], row[6]}


@given(rows())
def test_expense_effects_are_paid_minus_owed(row: tuple[Any, ...]) -> None:
    record = record_of(row, str(uuid.uuid4()))
    column = {str(u): i for i, u in enumerate({u for u, _ in record.payers + record.owed})}
    effects = expense_effects(row[7], row[9], column)
    want: dict[int, int] = {}
    for u, a in record.payers:
        want[column[str(u)]] = want.get(column[str(u)], 0) + a
    for u, a in record.owed:
        want[column[str(u)]] = want.get(column[str(u)], 0) - a
    assert effects == want


def test_headers_and_cells() -> None:
    assert column_names(["Sam", "Sam", "Sam #2", "Date"]) == ["Sam", "Sam #2", "Sam #2 #2", "Date #2"]
    assert [safe_cell(t) for t in ("=1+1", "+1", "-x", "@a", "\tx", "ok", "")] == [
        "'=1+1", "'+1", "'-x", "'@a", "'\tx", "ok", ""]  # fmt: skip


def test_record_of_reads_the_stored_parts() -> None:
    u = uuid.uuid4()
    now = dt.datetime.now(dt.UTC)
    row = (str(uuid.uuid4()), "d", "USD", 5, None, "USD", 5, f'[["{u}", 5]]', "exact", f'[["{u}", 5]]', now.date(),
           None, None, 1, str(u), now, str(u), None, None, None)  # fmt: skip
    record = record_of(row, str(uuid.uuid4()))
    assert record.payers == ((u, 5),) and record.paid_by == u and record.updated_at == now
