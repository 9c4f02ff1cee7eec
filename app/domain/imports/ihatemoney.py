"""Pure: an ihatemoney JSON bills export → an ImportPlan.

The format (ihatemoney 7.2.1, `Project.get_pretty_bills`, served by `/<project>/export/bills.json`): a
JSON array, newest bill first, of
`{"what", "bill_type": "Expense" | "Reimbursement", "amount": <number>, "currency": <code or "XXX">,
"date": "YYYY-MM-DD", "payer_name", "payer_weight": <number>, "owers": [<name>, ...]}`.
Amounts are JSON numbers printed from binary floats (10.1, 1200.0, -40.01): they are read as the
decimal they print as, never as a float, and must fit the currency's decimals. A member's weight is
not exported, only `payer_weight` on the bills they paid; like ihatemoney's own import
(`utils.get_members`), someone who never pays has weight 1.

ihatemoney's balance: for each bill, the payer +amount and each ower -amount x weight / (sum of the
owers' weights), kept as floats and rounded when shown; a reimbursement counts the same way. Here each
bill's parts are whole minor units placed by app.core.placement, so that every member's net is
ihatemoney's exact balance rounded to the minor unit, except where those roundings do not add up to
zero: `adjustments` then names who took the remainder. An expense becomes an expense (`equal` or
`shares` when its parts are quits' own split of the weights, else `exact`); a negative expense is the
owers paying the payer (an `exact` expense with several payers); a reimbursement is one settlement per
ower; a bill of zero is skipped (listed in `skipped`). Faults are reported at `["body", <index>, <field>]`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from app.core.money import currency_decimals, format_amount
from app.core.placement import Bill, Placement, place
from app.core.splits import MAX_PARTICIPANTS, MAX_SHARE
from app.domain.expenses import ExpenseRecord
from app.domain.imports.fields import Problems, Reader, parse_decimal_units, too_large
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

SOURCE = "ihatemoney"
NO_CURRENCY = "XXX"
BILL_TYPES = ("Expense", "Reimbursement")
NO_DESCRIPTION = "(no description)"


class _Bill:
    __slots__ = ("amount", "currency", "date", "index", "kind", "owers", "payer", "what")

    def __init__(self, *, index: int, what: str, kind: str, amount: Decimal, currency: str, date: dt.date,
                 payer: int, owers: list[int]) -> None:  # fmt: skip
        self.index, self.what, self.kind, self.amount, self.currency = index, what, kind, amount, currency
        self.date, self.payer, self.owers = date, payer, owers


def _number(r: Reader, value: Any, field: str) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        r.fail(field, "must be a number")
        return None
    return Decimal(value)


def _read(doc: list[Any], people: People, problems: Problems) -> tuple[list[_Bill], dict[int, Decimal], set[str]]:
    bills: list[_Bill] = []
    weights: dict[int, Decimal] = {}
    currencies: set[str] = set()
    index: dict[str, int] = {}

    def person(name: str) -> int:
        if name not in index:
            index[name] = people.add(name)
        return index[name]

    for i, item in enumerate(doc):
        doc[i] = None  # read once: the bill's dict goes as soon as it is read (a file may hold 10^5)
        r = Reader(problems, (i,))
        b = r.mapping(item, ())
        what = b.get("what") if b.get("what") not in (None, "") else NO_DESCRIPTION
        what = r.text(what, "what", max_len=500)
        kind = b.get("bill_type")
        if kind not in BILL_TYPES:
            r.fail("bill_type", f"must be one of {', '.join(BILL_TYPES)}")
        amount, weight = _number(r, b.get("amount"), "amount"), _number(r, b.get("payer_weight"), "payer_weight")
        currency = b.get("currency")
        if not isinstance(currency, str):
            r.fail("currency", "must be a currency code")
        date = r.date(b.get("date"), "date")
        payer_name = r.text(b.get("payer_name"), "payer_name", max_len=100)
        names = r.items(b.get("owers"), "owers", low=1, high=MAX_PARTICIPANTS)
        owers = [person(n) for j, n in enumerate(names) if r.text(n, ("owers", j), max_len=100) is not None]
        if len(set(owers)) != len(owers):
            r.fail("owers", "must name each person once")
        if weight is not None and not (0 < weight <= 10**6 and weight == round(weight, 12)):
            r.fail("payer_weight", "must be greater than 0, at most 10^6, with at most 12 decimals")
            weight = None
        if payer_name is not None and weight is not None:
            payer = person(payer_name)
            if weights.setdefault(payer, weight) != weight:
                r.fail("payer_weight", f"{payer_name!r} has weight {weights[payer]} in an earlier bill")
        if None in (what, amount, date, payer_name) or kind not in BILL_TYPES or not isinstance(currency, str):
            continue
        assert what is not None and amount is not None and date is not None and payer_name is not None
        currencies.add(currency)
        bills.append(_Bill(index=i, what=what, kind=str(kind), amount=amount, currency=currency, date=date,
                           payer=person(payer_name), owers=owers))  # fmt: skip
    return bills, weights, currencies


def _units(amount: Decimal, decimals: int) -> Callable[[], int]:
    return lambda: parse_decimal_units(amount, decimals)


def _integer_weights(weights: list[Decimal]) -> list[int]:
    """Positive decimals → integers in the same proportions (exactly)."""
    scale = max((max(-w.as_tuple().exponent, 0) for w in weights), default=0)  # type: ignore[operator]
    return [int(w.scaleb(scale)) for w in weights]


def _split_type(weights: list[int]) -> str:
    """A bill whose parts were not moved is quits' own largest-remainder split of its weights (ties by
    user_id, as app.core.splits does it): `equal` when the weights are, `shares` when they fit its bound."""
    if len(set(weights)) == 1:
        return "equal"
    return "shares" if max(weights) <= MAX_SHARE else "exact"


def _records(plan: ImportPlan, bills: list[_Bill], placement: Placement, *, ids: list[uuid.UUID],
             weights: list[int], problems: Problems, options: ImportOptions) -> None:  # fmt: skip
    caller, now, currency = options.caller.id, options.now, plan.group.currency
    chronological = sorted(range(len(bills)), key=lambda b: (bills[b].date, -bills[b].index))
    record_ids = iter(ordered_ids(sum(1 if b.kind == "Expense" else len(b.owers) for b in bills)))
    for b in chronological:
        bill, parts = bills[b], placement.parts[b]
        amount, who = sum(parts), [ids[o] for o in bill.owers]
        if amount == 0:
            plan.skipped.append({"row": bill.index, "reason": "the bill's amount is zero: it moves no money"})
        elif bill.kind == "Reimbursement":
            if all(part == 0 or ower == ids[bill.payer] for ower, part in zip(who, parts, strict=True)):
                plan.skipped.append({"row": bill.index, "reason": "a reimbursement of the payer alone moves no money"})
            for ower, part in zip(who, parts, strict=True):
                if part == 0 or ower == ids[bill.payer]:
                    continue
                sides = (ids[bill.payer], ower) if part > 0 else (ower, ids[bill.payer])
                plan.settlements.append(SettlementRecord(
                    id=next(record_ids), group_id=plan.group.id, from_user_id=sides[0], to_user_id=sides[1],
                    amount_minor=abs(part), currency=currency, note=bill.what, created_by=caller, created_at=now,
                    voided_at=None,
                ))  # fmt: skip
        else:
            if amount > 0:
                payers, owed = [(ids[bill.payer], amount)], [(u, p) for u, p in zip(who, parts, strict=True)]
                split = "exact" if placement.moved[b] else _split_type([weights[o] for o in bill.owers])
            else:
                payers = [(u, -p) for u, p in zip(who, parts, strict=True) if p]
                owed, split = [(ids[bill.payer], -amount)], "exact"
                if len(payers) > MAX_PAYERS:
                    msg = f"a negative bill becomes an expense paid by its owers: at most {MAX_PAYERS} of them"
                    problems.add((bill.index, "owers"), msg)
                    continue
            plan.expenses.append(ExpenseRecord(
                id=next(record_ids), group_id=plan.group.id, description=bill.what, currency=currency,
                amount_minor=abs(amount), exchange_rate=None, group_currency=currency,
                group_amount_minor=abs(amount), payers=tuple(payers), split_type=split, owed=tuple(owed),
                date=bill.date, category=None, notes=None, version=1, created_by=caller, created_at=now,
                updated_by=caller, updated_at=now, voided_at=None,
            ))  # fmt: skip


def _adjustments(plan: ImportPlan, people: People, placement: Placement, *, decimals: int) -> None:
    rounded_sum = format_amount(sum(placement.rounded), decimals)
    for i, (net, shown) in enumerate(zip(placement.nets, placement.rounded, strict=True)):
        if net != shown:
            plan.adjustments.append({
                "member": people.names[i], "user_id": str(people.ids[i]),
                "source_balance": format_amount(shown, decimals), "balance": format_amount(net, decimals),
                "difference": format_amount(net - shown, decimals),
                "reason": f"ihatemoney's balances, each rounded to the minor unit, add up to {rounded_sum}, not zero;"
                          " this member's exact balance is nearest a rounding boundary, so it takes the remainder",
            })  # fmt: skip


def parse(doc: list[Any], options: ImportOptions) -> ImportPlan:
    """A parsed ihatemoney export (numbers as Decimal) → the plan; one 422 listing every fault. Consumes
    doc: each bill is dropped from it once read."""
    if len(doc) > options.max_rows:
        raise too_large(options.max_rows, "bills")
    problems, people = Problems(), People(options)
    bills, paid_weights, currencies = _read(doc, people, problems)
    problems.check()
    currency = group_currency(options, currencies - {NO_CURRENCY}, required_msg=(
        "give ?currency=: the bills are in no currency (XXX) or in several, and a group has one"))  # fmt: skip
    decimals = currency_decimals(currency)
    minor: list[int] = []
    for bill in bills:
        r = Reader(problems, (bill.index,))
        if bill.currency not in (currency, NO_CURRENCY):
            r.fail("currency", f"must be {currency}: the export carries no exchange rates")
        minor.append(r.attempt("amount", _units(bill.amount, decimals)) or 0)
    problems.check()
    people.choose_me()
    weights = _integer_weights([paid_weights.get(i, Decimal(1)) for i in range(len(people.names))])
    ids = people.ids
    text = [str(u) for u in ids]
    for bill in bills:  # quits' order (ascending user_id): the parts, payers and owed follow it
        bill.owers.sort(key=text.__getitem__)
    placement = place(
        [Bill(payer=b.payer, amount=a, owers=tuple((o, weights[o]) for o in b.owers))
         for b, a in zip(bills, minor, strict=True)],
        len(people.names),
    )  # fmt: skip
    name = group_name(options, None, "Imported from ihatemoney")
    plan = ImportPlan(source=SOURCE, group=new_group(options, name=name, currency=currency), guests=people.guests(),
                      former=[])  # fmt: skip
    _records(plan, bills, placement, ids=ids, weights=weights, problems=problems, options=options)
    _adjustments(plan, people, placement, decimals=decimals)
    problems.check()
    return plan
