"""The import parsers (pure): ihatemoney's own export, Splitwise CSV layouts, quits documents; every fault
reported at its row and field, amounts never through a binary float."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import DomainError
from app.core.splits import split_equal, split_shares
from app.domain.imports import ihatemoney, splitwise
from app.domain.imports.plan import ImportOptions, ImportPlan
from app.domain.imports.run import parse_json, plan_import
from app.domain.users import UserRecord

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ihatemoney"
CALLER = UserRecord(id=uuid.uuid4(), name="Caller", email="caller@example.com", created_at=dt.datetime.now(dt.UTC))


def options(**kw: Any) -> ImportOptions:
    base: dict[str, Any] = {"caller": CALLER, "name": None, "currency": None, "me": None, "max_rows": 100_000,
                            "max_members": 1_000, "now": dt.datetime.now(dt.UTC)}  # fmt: skip
    return ImportOptions(**(base | kw))


def nets_by_name(plan: ImportPlan) -> dict[str, int]:
    names = {u: n for u, n in plan.guests} | {CALLER.id: CALLER.name}
    return {names[u]: n for u, n in plan.nets().items()}


def locs(exc: pytest.ExceptionInfo[DomainError]) -> list[tuple[Any, ...]]:
    return [f.path for f in exc.value.fields]


# ---- ihatemoney ---------------------------------------------------------------------------------


def test_ihatemoney_fixture_nets_are_ihatemoneys_balances_to_the_cent() -> None:
    """bills.json and balances.json were made by ihatemoney 7.2.1 itself (make_fixture.py)."""
    plan = plan_import((FIXTURES / "bills.json").read_bytes(), "application/json", options(currency="EUR"))
    expected = json.loads((FIXTURES / "balances.json").read_text(), parse_float=Decimal)
    cents = {n: int(b.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN) * 100) for n, b in expected.items()}
    got = nets_by_name(plan)
    moved = {a["member"]: a for a in plan.adjustments}
    # ihatemoney's rounded balances add up to -0.01: one person (Chloé, -246.9354...) takes the cent.
    assert sum(cents.values()) == -1 and set(moved) == {"Chloé"}
    assert moved["Chloé"] | {"reason": ""} == {"member": "Chloé", "user_id": moved["Chloé"]["user_id"],
                                              "source_balance": "-246.94", "balance": "-246.93",
                                              "difference": "0.01", "reason": ""}  # fmt: skip
    for name, want in cents.items():
        assert got[name] == want + (1 if name == "Chloé" else 0), name
    assert sum(got.values()) == 0
    # 10.1 is 10.10 (1010 cents), never 10.0999999...; a negative bill is the owers paying the payer.
    groceries = next(e for e in plan.expenses if e.description == "Groceries")
    assert groceries.amount_minor == 1010 and groceries.split_type in ("shares", "exact")
    refund = next(e for e in plan.expenses if e.description == "Refund of the deposit")
    assert refund.amount_minor == 4001 and len(refund.payers) == 4 and len(refund.owed) == 1
    assert len(plan.settlements) == 3  # Bob → Alice, Chloé → Bob, Chloé → Dan


def test_ihatemoney_numbers_are_read_as_printed() -> None:
    doc = parse_json(b'[{"amount": 0.1, "payer_weight": 1.5}]')
    assert doc[0]["amount"] == Decimal("0.1") and isinstance(doc[0]["amount"], Decimal)
    with pytest.raises(DomainError):
        parse_json(b'[{"amount": NaN}]')


def _bill(**kw: Any) -> dict[str, Any]:
    return {"what": "x", "bill_type": "Expense", "amount": Decimal("10"), "currency": "EUR", "date": "2024-01-01",
            "payer_name": "A", "payer_weight": Decimal(1), "owers": ["A", "B"]} | kw  # fmt: skip


def test_ihatemoney_faults_are_listed_by_row_and_field() -> None:
    bills = [_bill(), _bill(amount=Decimal("10.123")), _bill(bill_type="Gift"), _bill(owers=[]),
             _bill(date="2024-13-01"), _bill(payer_weight=Decimal(2)), _bill(currency="USD")]  # fmt: skip
    with pytest.raises(DomainError) as exc:
        ihatemoney.parse(bills, options())
    assert {(2, "bill_type"), (3, "owers"), (4, "date"), (5, "payer_weight")} <= set(locs(exc))
    with pytest.raises(DomainError) as exc:  # the currency and the decimals are checked once the rows parse
        ihatemoney.parse([_bill(), _bill(amount=Decimal("10.123")), _bill(currency="USD")], options(currency="EUR"))
    assert locs(exc) == [(1, "amount"), (2, "currency")]


def test_ihatemoney_without_a_currency_needs_the_query() -> None:
    with pytest.raises(DomainError) as exc:
        ihatemoney.parse([_bill(currency="XXX")], options())
    assert exc.value.fields[0].where == "query" and exc.value.fields[0].path == ("currency",)
    plan = ihatemoney.parse([_bill(currency="XXX", amount=100)], options(currency="JPY"))
    assert plan.group.currency == "JPY" and plan.expenses[0].amount_minor == 100


def test_ihatemoney_me_becomes_the_caller_and_zero_bills_are_skipped() -> None:
    plan = ihatemoney.parse([_bill(), _bill(amount=Decimal("0.0"))], options(me="b"))
    assert nets_by_name(plan) == {"A": 500, "Caller": -500}
    assert plan.skipped == [{"row": 1, "reason": "the bill's amount is zero: it moves no money"}]
    with pytest.raises(DomainError) as exc:
        ihatemoney.parse([_bill()], options(me="Zoe"))
    assert exc.value.fields[0].where == "query" and exc.value.fields[0].path == ("me",)


def test_an_empty_export_is_an_empty_group() -> None:
    plan = ihatemoney.parse([], options(currency="EUR"))  # found by the fuzz test: it was a 500
    assert (plan.expenses, plan.settlements, plan.guests) == ([], [], [])


def test_row_limit_is_named() -> None:
    with pytest.raises(DomainError) as exc:
        ihatemoney.parse([_bill()] * 3, options(max_rows=2))
    assert "more than 2 bills" in exc.value.detail


# ---- Splitwise ----------------------------------------------------------------------------------

SPLITWISE = """Date,Description,Category,Cost,Currency,Ann,Ben,Cat

2024-01-05,Dinner,Dining out,30.00,EUR,20.00,-10.00,-10.00
2024-01-06,Taxi,Taxi,10.00,EUR,-3.33,6.67,-3.33
2024-01-07,Ben paid Ann,Payment,5.00,EUR,-5.00,5.00,0.00

2024-02-01,Total balance, , ,EUR,{ann},{ben},{cat}
"""


def _csv(text: str, **kw: Any) -> ImportPlan:
    return splitwise.parse(text.encode(), options(**kw))


def test_splitwise_rows_become_expenses_and_payments_settlements() -> None:
    plan = _csv(SPLITWISE.format(ann="11.67", ben="1.67", cat="-13.34"))
    assert nets_by_name(plan) == {"Ann": 1167, "Ben": 167, "Cat": -1334}
    dinner = plan.expenses[0]
    assert dinner.amount_minor == 3000 and dinner.category == "Dining out" and dinner.split_type == "exact"
    assert sorted(a for _, a in dinner.owed) == [1000, 1000, 1000]  # Ann paid 30.00 and owes 10.00 of it
    assert len(plan.settlements) == 1 and plan.settlements[0].amount_minor == 500
    # Taxi's amounts add up to +0.01: the Total balance line says Cat takes it.
    assert [(a["row"], a["member"], a["amount"]) for a in plan.adjustments] == [(4, "Cat", "-0.01")]


def test_splitwise_without_totals_the_payer_takes_the_remainder() -> None:
    plan = _csv(SPLITWISE.split("\n\n2024-02-01")[0] + "\n")
    assert [(a["row"], a["member"], a["amount"]) for a in plan.adjustments] == [(4, "Ben", "-0.01")]
    assert sum(nets_by_name(plan).values()) == 0


def test_splitwise_totals_that_disagree_are_a_422_at_the_total_line() -> None:
    with pytest.raises(DomainError) as exc:
        _csv(SPLITWISE.format(ann="11.67", ben="1.67", cat="-13.00"))
    assert (7, "Cat") in locs(exc)


def test_splitwise_faults_and_layouts() -> None:
    bad = "Date,Description,Category,Cost,Currency,Ann,Ben\n2024-01-05,x,,1.00,EUR,1.00,-x\n05/01/2024,y,,1,EUR,1,-1\n"
    with pytest.raises(DomainError) as exc:
        _csv(bad)
    assert locs(exc) == [(2, "Ben"), (3, "Date")]
    with pytest.raises(DomainError) as exc:
        _csv("Date,Description,Category,Cost,Currency,Ann,Ben\n2024-01-05,x,,1.00,EUR,1.00,-1.00\n"
             "2024-01-05,x,,1.00,USD,1.00,-1.00\n")  # fmt: skip
    assert locs(exc) == [(3, "Currency")]
    with pytest.raises(DomainError) as exc:  # more than one unit per person off: not a rounding remainder
        _csv("Date,Description,Category,Cost,Currency,Ann,Ben\n2024-01-05,x,,1.00,EUR,1.00,-0.50\n")
    assert locs(exc) == [(2, "Cost")]
    # A note line first, the header in Italian, blank cells as zero, a quoted name with a comma.
    plan = _csv('Note: does not include group expenses\n\nData,Descrizione,Categorie,Costo,Valuta,"Rossi, P",Vera\n'
                "2024-01-05,Cena,,12.00,EUR,6.00,-6.00\n2024-01-06,Pane,,,EUR,0.00,\n")  # fmt: skip
    assert nets_by_name(plan) == {"Rossi, P": 600, "Vera": -600}
    assert plan.skipped == [{"row": 5, "reason": "every amount in the row is zero: it moves no money"}]


def test_splitwise_names_are_matched_for_me_and_duplicates_are_refused() -> None:
    text = "Date,Description,Category,Cost,Currency,Ann,Ann\n2024-01-05,x,,2.00,EUR,1.00,-1.00\n"
    with pytest.raises(DomainError) as exc:
        _csv(text, me="Ann")
    assert exc.value.fields[0].path == ("me",)
    assert sorted(_csv(text).nets().values()) == [-100, 100]  # two people, both named Ann


# ---- quits --------------------------------------------------------------------------------------


def _doc() -> dict[str, Any]:
    gid, a, b = str(uuid.uuid4()), str(CALLER.id), str(uuid.uuid4())
    expense = {"id": str(uuid.uuid4()), "group_id": gid, "description": "d", "amount": "10.00", "currency": "USD",
               "exchange_rate": None, "group_amount": "10.00", "paid_by": a,
               "payers": [{"user_id": a, "amount": "10.00"}], "split_type": "equal",
               "shares": [{"user_id": a, "amount": "5.00"}, {"user_id": b, "amount": "5.00"}], "date": "2026-01-01",
               "category": None, "notes": None, "version": 1, "created_by": a, "created_at": "2026-01-01T00:00:00Z",
               "updated_by": a, "updated_at": "2026-01-01T00:00:00Z", "voided_at": None, "versions": []}  # fmt: skip
    return {"format": "quits", "version": 1, "group": {"id": gid, "name": "G", "currency": "USD"},
            "members": [{"user_id": a, "name": "Me"}, {"user_id": b, "name": "Bo"}], "expenses": [expense],
            "settlements": [], "former_members": []}  # fmt: skip


def _quits(doc: dict[str, Any], **kw: Any) -> ImportPlan:
    return plan_import(json.dumps(doc).encode(), "application/json", options(**kw))


def test_quits_document_keeps_the_caller_and_checks_every_record() -> None:
    plan = _quits(_doc())
    assert nets_by_name(plan) == {"Caller": 500, "Bo": -500}
    doc = _doc()
    doc["expenses"][0]["shares"][1]["amount"] = "5.01"
    doc["expenses"][0]["amount"] = 10
    doc["expenses"][0]["payers"][0]["user_id"] = str(uuid.uuid4())
    with pytest.raises(DomainError) as exc:
        _quits(doc)
    assert {("expenses", 0, "amount"), ("expenses", 0, "payers", 0, "user_id"), ("expenses", 0, "shares")} <= set(locs(exc))


def test_quits_version_and_currency_are_checked() -> None:
    with pytest.raises(DomainError) as exc:
        _quits(_doc() | {"version": 2})
    assert locs(exc) == [("version",)]
    with pytest.raises(DomainError) as exc:
        _quits(_doc(), currency="EUR")
    assert exc.value.fields[0].path == ("currency",)


def test_a_json_body_of_another_shape_is_refused() -> None:
    with pytest.raises(DomainError) as exc:
        plan_import(b'{"bills": []}', "application/json", options())
    assert exc.value.code == "validation-error"
    with pytest.raises(DomainError) as exc:
        plan_import(b"x", "text/plain", options())
    assert exc.value.code == "unsupported-media-type"



def test_every_plan_keeps_parts_in_user_id_order_and_shares_mean_quits_own_split() -> None:
    plans = [
        plan_import((FIXTURES / "bills.json").read_bytes(), "application/json", options(currency="EUR")),
        _csv(SPLITWISE.format(ann="11.67", ben="1.67", cat="-13.34")),
        _quits(_doc()),
    ]
    for plan in plans:
        for e in plan.expenses:
            for parts in (e.payers, e.owed):
                assert [str(u) for u, _ in parts] == sorted(str(u) for u, _ in parts)
            assert sum(a for _, a in e.payers) == sum(a for _, a in e.owed) == e.group_amount_minor
    weights = {"Alice": 2, "Bob": 4, "Chloé": 3, "Dan": 2}  # payer_weight 1, 2, 1.5 (and 1: never pays), doubled
    names = {u: n for u, n in plans[0].guests} | {CALLER.id: CALLER.name}
    for e in plans[0].expenses:
        if e.split_type == "shares":
            assert split_shares(e.group_amount_minor, [(u, weights[names[u]]) for u, _ in e.owed]) == list(e.owed)
        elif e.split_type == "equal":
            assert split_equal(e.group_amount_minor, [u for u, _ in e.owed]) == list(e.owed)
    assert {e.split_type for e in plans[0].expenses} >= {"shares", "equal"}
