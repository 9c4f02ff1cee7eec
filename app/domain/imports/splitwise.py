"""Pure: a Splitwise CSV export → an ImportPlan.

The format: optional note lines, then a header `Date,Description,Category,Cost,Currency,<person>,...`
(read by position: Splitwise translates the names), records `YYYY-MM-DD,<text>,<category>,<cost>,<code>,
<signed amount>,...` where each person's cell is the row's effect on their balance (the payer positive),
blank lines, and closing `Total balance` lines (one per currency: each person's balance). The
category "Payment" marks a settle-up. quits' own CSV export has this layout (without the total line)
and imports back the same way.

A record becomes a settlement when it is a Payment from one person to one other; otherwise an
expense: with one person in credit, that person paid Cost (their own share is Cost minus their cell;
a Cost that is blank, negative or smaller than that cell is not used); else each person in credit
paid their cell. Either way, split `exact`, every person's net moves by exactly their cell.

A row whose cells do not add up to zero (a rounding remainder, at most one minor unit per person in
the row) has the remainder taken off one person of the row: when the file has a Total balance line,
whoever the totals say; else the person with the largest cell (the payer); each such placement is
listed in `adjustments`. With a total line, every person's balance must come out exactly as it says
(else 422 at that line). A row moving nothing is skipped (listed in `skipped`). One currency per
group: a row in another is a 422 (the file has no exchange rates).
Faults are reported at `["body", <record number, the header being 1>, <column name>]`.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from app.core.errors import DomainError, FieldError
from app.core.money import currency_decimals, format_amount, is_currency_code
from app.core.splits import MAX_PARTICIPANTS
from app.domain.expenses import ExpenseRecord
from app.domain.imports.fields import Problems, Reader, parse_date, parse_signed, too_large
from app.domain.imports.plan import (
    ImportOptions,
    ImportPlan,
    People,
    group_currency,
    group_name,
    new_group,
    ordered_ids,
)
from app.domain.schemas import MAX_PAYERS
from app.domain.settlements import SettlementRecord

SOURCE = "splitwise"
FIXED = 5  # Date, Description, Category, Cost, Currency
TOTAL, PAYMENT = "total balance", "payment"
FORMULA_ESCAPE = ("'=", "'+", "'-", "'@", "'\t", "'\r")
NO_DESCRIPTION = "(no description)"


@dataclass(slots=True, kw_only=True)
class _Row:
    number: int
    date: str
    description: str
    category: str
    cost: int | None
    cells: list[int]


def _text(cell: str) -> str:
    """A cell as written before a spreadsheet escaped it (quits' export prefixes formulas with ')."""
    return cell[1:] if cell.startswith(FORMULA_ESCAPE) else cell


def _records(body: bytes) -> Iterator[list[str]]:
    """The file's records, one at a time (never all of them at once)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        msg = "the body is not UTF-8"
        raise DomainError("validation-error", msg, fields=[FieldError((), msg)]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    number = 0
    try:
        for number, cells in enumerate(reader, start=1):  # noqa: B007 (number is read after a failure)
            yield cells
    except csv.Error as exc:  # e.g. a field longer than the csv module's limit (128 KiB)
        msg = f"not readable as CSV: {exc}"
        raise DomainError("validation-error", msg, fields=[FieldError((number + 1,), msg)]) from None


def _signed(cell: str, decimals: int) -> Callable[[], int]:
    """A person's cell: a signed amount; a blank cell is zero."""
    return lambda: parse_signed(cell.strip() or "0", decimals)


class _File:
    def __init__(self, options: ImportOptions, problems: Problems) -> None:
        self.options, self.problems = options, problems
        self.people = People(options)
        self.header: list[str] = []
        self.currency: str | None = options.currency
        self.decimals = 0
        self.rows: list[_Row] = []
        self.totals: dict[str, tuple[int, list[str]]] = {}  # currency → (record number, cells)
        self.order: list[int] = []  # people by ascending user_id (the order of an expense's parts)
        self.rank: dict[uuid.UUID, int] = {}

    def read_header(self, number: int, cells: list[str]) -> None:
        self.header = [c.strip() for c in cells]
        r = Reader(self.problems, (number,))
        for i, name in enumerate(self.header[FIXED:], start=FIXED):
            if r.text(_text(name), name or f"column {i + 1}", max_len=100) is not None:
                self.people.add(_text(name))

    def read_row(self, number: int, cells: list[str]) -> None:
        r = Reader(self.problems, (number,))
        if len(cells) != len(self.header):
            r.fail("Currency" if len(cells) < FIXED else self.header[min(len(cells), len(self.header)) - 1],
                   f"the record has {len(cells)} columns, the header {len(self.header)}")  # fmt: skip
            return
        code = cells[4].strip()
        if self.currency is None and is_currency_code(code):
            self.currency = code
            self.decimals = currency_decimals(code)
        if cells[1].strip().casefold() == TOTAL:
            self.totals.setdefault(code, (number, cells))
            return
        if code != self.currency:
            msg = f"must be {self.currency}: a group has one currency, and the file has no exchange rates"
            r.fail(self.header[4], msg)
            return
        values: list[int | None] = []
        for i, cell in enumerate(cells[FIXED:], start=FIXED):
            try:
                values.append(parse_signed(cell.strip() or "0", self.decimals))
            except ValueError as exc:
                r.fail(self.header[i], str(exc))
                values.append(None)
        cost = r.attempt(self.header[3], _signed(cells[3], self.decimals)) if cells[3].strip() else None
        date = r.attempt(self.header[0], lambda: parse_date(cells[0].strip()).isoformat())
        if date is None or None in values:
            return
        self.rows.append(_Row(number=number, date=date, description=_text(cells[1]).strip(),
                              category=_text(cells[2]).strip(), cost=cost, cells=values))  # type: ignore[arg-type]


def _read(body: bytes, options: ImportOptions, problems: Problems) -> _File:
    file = _File(options, problems)
    if options.currency is not None:
        file.decimals = currency_decimals(group_currency(options, (), required_msg=""))
    for number, cells in enumerate(_records(body), start=1):
        if not any(c.strip() for c in cells):
            continue
        if not file.header:
            if len(cells) > FIXED:
                file.read_header(number, cells)
            elif len(cells) > 1:
                problems.add((number,), "expected the header: Date,Description,Category,Cost,Currency,<person>,...")
                break
            continue
        if len(file.rows) >= options.max_rows:
            raise too_large(options.max_rows, "rows")
        file.read_row(number, cells)
    if not file.header:
        problems.add((), "the file has no header line: Date,Description,Category,Cost,Currency,<person>,...")
    return file


def _targets(file: _File) -> tuple[int, list[int]] | None:
    """The Total balance line of the group's currency: (record number, each person's balance)."""
    for code, (number, cells) in file.totals.items():
        r = Reader(file.problems, (number,))
        if len(cells) != len(file.header):
            r.fail(file.header[4], f"the record has {len(cells)} columns, the header {len(file.header)}")
            continue
        decimals = currency_decimals(code) if is_currency_code(code) else file.decimals
        values = [r.attempt(file.header[i], _signed(cell, decimals))
                  for i, cell in enumerate(cells[FIXED:], start=FIXED)]  # fmt: skip
        if code == file.currency and None not in values:
            return number, values  # type: ignore[return-value]
        if code != file.currency and any(values):
            r.fail(file.header[4], f"a balance in {code}: a group has one currency, and the file has no exchange rates")
    return None


def _place_remainders(file: _File, plan: ImportPlan) -> None:
    """Make every row add up to zero, taking each remainder off one person of the row (module docstring)."""
    people = len(file.people.names)
    sums = [sum(row.cells[i] for row in file.rows) for i in range(people)]
    totals = _targets(file)
    need = [t - s for t, s in zip(totals[1], sums, strict=True)] if totals else [0] * people
    for row in file.rows:
        remainder = sum(row.cells)
        involved = [i for i, c in enumerate(row.cells) if c]
        if remainder and abs(remainder) > len(involved):
            shown = format_amount(remainder, file.decimals)
            file.problems.add((row.number, file.header[3]), f"the row's amounts add up to {shown}, not zero")
            continue
        step, placed = (-1 if remainder > 0 else 1), dict.fromkeys(involved, 0)
        for _ in range(abs(remainder)):
            i = max(involved, key=lambda i: (step * need[i], abs(row.cells[i]), -i))
            row.cells[i] += step
            need[i] -= step
            sums[i] += step
            placed[i] += step
        for i, amount in placed.items():
            if amount:
                plan.adjustments.append({
                    "row": row.number, "member": file.people.names[i], "user_id": str(file.people.ids[i]),
                    "amount": format_amount(amount, file.decimals),
                    "reason": f"the row's amounts add up to {format_amount(remainder, file.decimals)}, not zero; "
                              + ("the Total balance line puts the remainder here" if totals else
                                 "the person with the largest amount in the row takes the remainder"),
                })  # fmt: skip
    if totals:
        for i, (got, want) in enumerate(zip(sums, totals[1], strict=True)):
            if got != want:
                file.problems.add((totals[0], file.header[FIXED + i]), (
                    f"the rows add up to {format_amount(got, file.decimals)} for this person; the Total balance"
                    f" line says {format_amount(want, file.decimals)}"))  # fmt: skip


def _record(file: _File, plan: ImportPlan, row: _Row, *, record_id: uuid.UUID) -> None:
    ids, caller, now = file.people.ids, file.options.caller.id, file.options.now
    credit = [(ids[i], row.cells[i]) for i in file.order if row.cells[i] > 0]  # ascending user_id
    debit = [(ids[i], -row.cells[i]) for i in file.order if row.cells[i] < 0]
    r = Reader(file.problems, (row.number,))
    description = r.text(row.description or NO_DESCRIPTION, file.header[1], max_len=500)
    category = r.text(row.category, file.header[2], max_len=50) if row.category else None
    if description is None or (row.category and category is None):
        return
    if not credit:
        plan.skipped.append({"row": row.number, "reason": "every amount in the row is zero: it moves no money"})
    elif row.category.casefold() == PAYMENT and len(credit) == 1 and len(debit) == 1:
        plan.settlements.append(SettlementRecord(
            id=record_id, group_id=plan.group.id, from_user_id=credit[0][0], to_user_id=debit[0][0],
            amount_minor=credit[0][1], currency=plan.group.currency, note=description, created_by=caller,
            created_at=now, voided_at=None,
        ))  # fmt: skip
    else:
        if len(credit) == 1 and row.cost is not None and row.cost >= credit[0][1] > 0:
            payer, cell = credit[0]
            total, payers = row.cost, [(payer, row.cost)]
            owed = debit + ([(payer, row.cost - cell)] if row.cost > cell else [])
        else:
            total, payers, owed = sum(c for _, c in credit), credit, debit
        if len(payers) > MAX_PAYERS or len(owed) > MAX_PARTICIPANTS:
            r.fail(file.header[3], f"an expense has at most {MAX_PAYERS} payers and {MAX_PARTICIPANTS} participants")
            return
        plan.expenses.append(ExpenseRecord(
            id=record_id, group_id=plan.group.id, description=description, currency=plan.group.currency,
            amount_minor=total, exchange_rate=None, group_currency=plan.group.currency, group_amount_minor=total,
            payers=tuple(payers), split_type="exact", owed=tuple(sorted(owed, key=lambda p: file.rank[p[0]])),
            date=parse_date(row.date), category=category,
            notes=None, version=1, created_by=caller, created_at=now, updated_by=caller, updated_at=now, voided_at=None,
        ))  # fmt: skip


def parse(body: bytes, options: ImportOptions) -> ImportPlan:
    """A Splitwise CSV export → the plan; one 422 listing every fault."""
    problems = Problems()
    file = _read(body, options, problems)
    problems.check()
    currency = group_currency(options, [file.currency] if file.currency else [],
                              required_msg="give ?currency=: the file has no row with a currency")  # fmt: skip
    file.people.choose_me()
    file.order = sorted(range(len(file.people.ids)), key=lambda i: str(file.people.ids[i]))
    file.rank = {file.people.ids[i]: r for r, i in enumerate(file.order)}
    plan = ImportPlan(
        source=SOURCE,
        group=new_group(options, name=group_name(options, None, "Imported from Splitwise"), currency=currency),
        guests=file.people.guests(),
        former=[],
    )
    _place_remainders(file, plan)
    problems.check()
    rows: list[_Row | None] = list(file.rows)
    file.rows = []
    for i, record_id in enumerate(ordered_ids(len(rows))):
        row, rows[i] = rows[i], None  # each row goes once it is a record
        assert row is not None
        _record(file, plan, row, record_id=record_id)
    problems.check()
    return plan
