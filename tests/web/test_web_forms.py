"""Every form's refusals through the in-process app: the message next to its field (aria-invalid, described
by the message), a 4xx, and nothing written; plus the double submission of one form."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from tests.dbutil import assert_ledger_invariants, counts
from tests.web.webclient import PASSWORD, Person, field_error, idem_of, member_id

WRITES = ("expenses", "ledger_entries", "settlements", "idempotency_keys")


@pytest.fixture
def ann(client: TestClient, clean_db: URL) -> Person:
    return Person(client, "Ann").sign_up()


def trip(ann: Person) -> tuple[str, dict[str, str]]:
    gid = ann.group()
    bob = ann.add_guest(gid, "Bob")
    page = ann.get(f"/groups/{gid}/expenses/new").text
    return gid, {"ann": member_id(page, "Ann"), "bob": bob}


def expense(ids: dict[str, str], *, split: str = "equal", rows: dict[str, dict[str, str]] | None = None,
            **fields: str) -> dict[str, Any]:  # fmt: skip
    data: dict[str, Any] = {"description": "Dinner", "amount": "30.00", "currency": "USD", "split_type": split,
                            "payer_mode": "one", "paid_by": ids["ann"], "action": "save"}  # fmt: skip
    for who, uid in ids.items():
        row = (rows or {}).get(who, {"inc": "on"})
        for column, value in row.items():
            data[f"{column}_{uid}"] = value
    data.update(fields)
    return data


def refused(page: str, field: str, needle: str) -> None:
    message = field_error(page, field)
    assert message is not None and needle in message, (field, message)
    assert f'id="f-{field}"' in page or f'id="f-{field}" ' in page
    assert f'aria-describedby="f-{field}-error"' in page or f"f-{field}-error" in page
    assert 'role="alert"' in page


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("no description", {"description": ""}, "description", "Enter what the expense was for"),
    ("comma decimal", {"amount": "12,50"}, "amount", "decimal string"),
    ("zero amount", {"amount": "0"}, "amount", "greater than zero"),
    ("too many decimals", {"amount": "1.234"}, "amount", "at most 2 decimal places"),
    ("unknown currency", {"currency": "XYZ", "exchange_rate": "1.5"}, "currency", "ISO 4217"),
    ("no rate", {"currency": "EUR"}, "exchange_rate", "Exchange rate is required"),
    ("bad rate", {"currency": "EUR", "exchange_rate": "-1"}, "exchange_rate", "Exchange rate"),
    ("bad date", {"date": "2026-02-30"}, "date", "calendar date"),
    ("long category", {"category": "x" * 51}, "category", "at most 50"),
]


@pytest.mark.parametrize(("case", "change", "field", "needle"), CASES, ids=[c[0] for c in CASES])
def test_expense_field_refusals(ann: Person, clean_db: URL, case: str, change: dict[str, Any], field: str,
                                needle: str) -> None:  # fmt: skip
    gid, ids = trip(ann)
    before = counts(clean_db, WRITES)
    r = ann.post(f"/groups/{gid}/expenses", expense(ids, **change))
    assert r.status_code == 422, r.text
    refused(r.text, field, needle)
    assert counts(clean_db, WRITES) == before


def test_split_refusals_are_next_to_the_rows(ann: Person, clean_db: URL) -> None:
    gid, ids = trip(ann)
    before = counts(clean_db, WRITES)
    pct = {"ann": {"inc": "on", "pct": "60"}, "bob": {"inc": "on", "pct": "30"}}
    r = ann.post(f"/groups/{gid}/expenses", expense(ids, split="percentage", rows=pct))
    refused(r.text, "participants", "100")
    pct = {"ann": {"inc": "on", "pct": "60.12345"}, "bob": {"inc": "on", "pct": "39.87655"}}
    r = ann.post(f"/groups/{gid}/expenses", expense(ids, split="percentage", rows=pct))
    refused(r.text, f"pct_{ids['ann']}", "at most 4 decimal places")
    exact = {"ann": {"inc": "on", "amt": "10.00"}, "bob": {"inc": "on", "amt": "10.00"}}
    r = ann.post(f"/groups/{gid}/expenses", expense(ids, split="exact", rows=exact))
    refused(r.text, "participants", "sum to 20.00, not 30.00")
    shares = {"ann": {"inc": "on", "shr": "1.5"}, "bob": {"inc": "on", "shr": "1"}}
    r = ann.post(f"/groups/{gid}/expenses", expense(ids, split="shares", rows=shares))
    refused(r.text, f"shr_{ids['ann']}", "whole number")
    missing = {"ann": {"inc": "on", "shr": ""}, "bob": {"inc": "on", "shr": "1"}}
    r = ann.post(f"/groups/{gid}/expenses", expense(ids, split="shares", rows=missing))
    refused(r.text, f"shr_{ids['ann']}", "Enter a value")
    nobody = {"ann": {}, "bob": {}}
    r = ann.post(f"/groups/{gid}/expenses", expense(ids, rows=nobody))
    refused(r.text, "participants", "at least one person")
    payers = {"ann": {"inc": "on", "paid": "20.00"}, "bob": {"inc": "on", "paid": "5.00"}}
    r = ann.post(f"/groups/{gid}/expenses", expense(ids, rows=payers, payer_mode="several"))
    refused(r.text, "payers", "sum to 25.00, not 30.00")
    payers = {"ann": {"inc": "on", "paid": "30,00"}, "bob": {"inc": "on"}}
    r = ann.post(f"/groups/{gid}/expenses", expense(ids, rows=payers, payer_mode="several"))
    refused(r.text, f"paid_{ids['ann']}", "decimal string")
    assert counts(clean_db, WRITES) == before


def test_preview_computes_without_writing(ann: Person, clean_db: URL) -> None:
    gid, ids = trip(ann)
    before = counts(clean_db, WRITES)
    r = ann.post(f"/groups/{gid}/expenses/preview", expense(ids, amount="10.00"), headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert "owes $5.00" in r.text and "<html" not in r.text
    r = ann.post(f"/groups/{gid}/expenses", expense(ids, amount="10.01", action="preview"))  # the no-JS preview
    assert r.status_code == 200 and "$5.01" in r.text and "$5.00" in r.text
    r = ann.post(f"/groups/{gid}/expenses/preview", expense(ids, amount="x"))
    assert "Not computed yet" in r.text
    assert counts(clean_db, WRITES) == before


def test_double_submission_records_one_expense(ann: Person, clean_db: URL) -> None:
    gid, ids = trip(ann)
    key = idem_of(ann.get(f"/groups/{gid}/expenses/new").text)
    data = expense(ids, idem=key)
    first, second = ann.post(f"/groups/{gid}/expenses", data), ann.post(f"/groups/{gid}/expenses", data)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]  # the replay names the same expense
    assert counts(clean_db, ("expenses",))["expenses"] == 1
    other = ann.post(f"/groups/{gid}/expenses", expense(ids, idem=key, amount="31.00"))
    assert other.status_code == 409 and "already used to save something else" in other.text
    assert counts(clean_db, ("expenses",))["expenses"] == 1
    assert_ledger_invariants(clean_db)


def test_group_and_member_refusals(ann: Person, clean_db: URL) -> None:
    ann.get("/")
    for data, field, needle in [
        ({"name": "", "currency": "USD"}, "name", "required"),
        ({"name": "G", "currency": "ABCD"}, "currency", "3-letter"),
        ({"name": "G", "currency": "XYZ"}, "currency", "ISO 4217"),
    ]:
        r = ann.post("/groups", data)
        assert r.status_code == 422
        refused(r.text, field, needle)
    assert counts(clean_db, ("groups",))["groups"] == 0
    gid = ann.group()
    r = ann.post(f"/groups/{gid}/members", {"kind": "email", "email": "nobody@example.com"})
    refused(r.text, "email_email", "No account has this email")
    r = ann.post(f"/groups/{gid}/members", {"kind": "email", "email": ann.email})
    refused(r.text, "email_email", "already a member")
    r = ann.post(f"/groups/{gid}/members", {"kind": "name", "name": "   "})
    refused(r.text, "name_name", "required")
    assert counts(clean_db, ("memberships",))["memberships"] == 1


def test_settlement_refusals(ann: Person, clean_db: URL) -> None:
    gid, ids = trip(ann)
    assert ann.post(f"/groups/{gid}/expenses", expense(ids)).status_code == 303
    ann.get(f"/groups/{gid}/settle")
    before = counts(clean_db, WRITES)
    pay = {"from_user_id": ids["bob"], "to_user_id": ids["ann"], "amount": "15.01", "idem": "web-k1"}
    r = ann.post(f"/groups/{gid}/settlements", pay)
    assert r.status_code == 422
    refused(r.text, "amount", "at most 15.00")
    r = ann.post(f"/groups/{gid}/settlements", {**pay, "to_user_id": ids["bob"], "amount": "1.00"})
    refused(r.text, "to_user_id", "must differ")
    r = ann.post(f"/groups/{gid}/settlements", {**pay, "amount": "1e3"})
    refused(r.text, "amount", "decimal string")
    r = ann.post(f"/groups/{gid}/settlements", {**pay, "from_user_id": ""})
    refused(r.text, "from_user_id", "Choose someone")
    assert counts(clean_db, WRITES) == before
    assert ann.post(f"/groups/{gid}/settlements", {**pay, "amount": "15.00"}).status_code == 303


def test_account_refusals(client: TestClient, clean_db: URL) -> None:
    taken = Person(client, "Taken").sign_up()
    p = Person(client, "New")
    p.get("/signup")
    for data, field, needle in [
        ({"name": "N", "email": "not-an-email", "password": PASSWORD}, "email", "email address"),
        ({"name": "N", "email": p.email, "password": "12345678"}, "password", "Password"),
        ({"name": "N", "email": p.email, "password": ""}, "password", "at least 8"),
        ({"name": "", "email": p.email, "password": PASSWORD}, "name", "required"),
        ({"name": "N", "email": taken.email.upper(), "password": PASSWORD}, "email", "already exists"),
    ]:
        r = p.post("/signup", data)
        assert r.status_code == 422, r.text
        refused(r.text, field, needle)
    assert counts(clean_db, ("users",))["users"] == 1
    p.get("/signin")
    r = p.post("/signin", {"email": taken.email, "password": "wrong password!"})
    assert r.status_code == 401 and "The email or the password is wrong." in r.text
    r = p.post("/claim", {"invite_code": "qi_nope", "email": p.email, "password": PASSWORD})
    refused(r.text, "invite_code", "unknown, already used or expired")
    assert counts(clean_db, ("users",))["users"] == 1
