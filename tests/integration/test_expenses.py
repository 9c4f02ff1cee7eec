from typing import Any

import pytest
from sqlalchemy.engine import URL

from tests.api import Api, Who, assert_problem
from tests.dbutil import assert_ledger_invariants, counts, run_sql


def by_uuid(*users: Who) -> list[Who]:
    return sorted(users, key=lambda u: u.id)


def owed(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["user_id"], s["amount"]) for s in body["shares"]]


def assert_ledger_matches_balances(db_url: URL) -> None:
    assert_ledger_invariants(db_url)


def test_equal_100_among_3(api: Api, db_url: URL) -> None:
    a, b, c = api.user(), api.user(), api.user()
    gid = api.group(a, members=(b, c))
    body = api.expense(a, gid, "100.00", a, [c, a, b]).json()
    first, second, third = by_uuid(a, b, c)
    assert owed(body) == [(first.id, "33.34"), (second.id, "33.33"), (third.id, "33.33")]
    nets = api.nets(a, gid)
    assert nets[a.id] == ("66.66" if a is first else "66.67")
    shares = dict(owed(body))
    assert nets[b.id] == "-" + shares[b.id] and nets[c.id] == "-" + shares[c.id]
    assert_ledger_matches_balances(db_url)


def test_equal_5_cents_among_7(api: Api) -> None:
    users = [api.user() for _ in range(7)]
    gid = api.group(users[0], members=tuple(users[1:]))
    body = api.expense(users[0], gid, "0.05", users[0], users).json()
    ordered = by_uuid(*users)
    assert owed(body) == [(u.id, "0.01") for u in ordered[:5]] + [(u.id, "0.00") for u in ordered[5:]]


def test_percentage_12_5_and_87_5_of_10_cents(api: Api) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    parts = [{"user_id": a.id, "percentage": "12.5"}, {"user_id": b.id, "percentage": "87.5"}]
    body = api.expense(a, gid, "0.10", a, parts, split_type="percentage").json()
    assert dict(owed(body)) == {a.id: "0.01", b.id: "0.09"}


def test_percentage_thirds_largest_remainder_ties_by_uuid(api: Api) -> None:
    a, b, c = api.user(), api.user(), api.user()
    gid = api.group(a, members=(b, c))
    parts = [{"user_id": u.id, "percentage": p} for u, p in ((a, "33.3333"), (b, "33.3333"), (c, "33.3334"))]
    body = api.expense(a, gid, "1.00", a, parts, split_type="percentage").json()
    assert sum(int(x.replace(".", "")) for _, x in owed(body)) == 100
    # exact shares 33.3333, 33.3333, 33.3334 cents: floors 33/33/33, fractions .3333/.3333/.3334 → c gets the cent
    assert dict(owed(body)) == {a.id: "0.33", b.id: "0.33", c.id: "0.34"}


def test_shares_1_2_of_10(api: Api) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    parts = [{"user_id": a.id, "shares": 1}, {"user_id": b.id, "shares": 2}]
    body = api.expense(a, gid, "10.00", a, parts, split_type="shares").json()
    assert dict(owed(body)) == {a.id: "3.33", b.id: "6.67"}


def test_exact_split_allows_zero_participant(api: Api) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    parts = [{"user_id": a.id, "amount": "0.00"}, {"user_id": b.id, "amount": "40.00"}]
    body = api.expense(a, gid, "40", a, parts, split_type="exact").json()
    assert body["amount"] == "40.00"
    assert dict(owed(body)) == {a.id: "0.00", b.id: "40.00"}
    assert api.nets(a, gid) == {a.id: "40.00", b.id: "-40.00"}


def test_payer_need_not_participate(api: Api) -> None:
    a, b, c = api.user(), api.user(), api.user()
    gid = api.group(a, members=(b, c))
    api.expense(a, gid, "9.00", a, [b, c])
    assert api.nets(a, gid) == {a.id: "9.00", b.id: "-4.50", c.id: "-4.50"}


def test_jpy_and_kwd(api: Api) -> None:
    a, b, c = api.user(), api.user(), api.user()
    jpy = api.group(a, "JPY", members=(b, c))
    body = api.expense(a, jpy, "100", a, [a, b, c]).json()
    assert body["amount"] == "100" and body["currency"] == "JPY"
    assert sorted(x for _, x in owed(body)) == ["33", "33", "34"]
    assert_problem(api.expense(a, jpy, "100.0", a, [a, b], expect=None), 422)
    kwd = api.group(a, "KWD", members=(b,))
    body = api.expense(a, kwd, "1.5", a, [a, b]).json()
    assert body["amount"] == "1.500"
    assert sorted(x for _, x in owed(body)) == ["0.750", "0.750"]
    assert api.nets(a, kwd) == {a.id: "0.750", b.id: "-0.750"}


def test_amount_bounds(api: Api) -> None:
    a = api.user()
    gid = api.group(a)
    assert api.expense(a, gid, "10000000000.00", a, [a]).json()["amount"] == "10000000000.00"
    assert_problem(api.expense(a, gid, "10000000000.01", a, [a], expect=None), 422)


def _payload(a: Who, b: Who, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "description": "x",
        "amount": "10.00",
        "paid_by": a.id,
        "split_type": "equal",
        "participants": [{"user_id": a.id}, {"user_id": b.id}],
    }
    body.update(over)
    return body


INVALID: list[tuple[str, dict[str, Any]]] = [
    ("number amount", {"amount": 10}),
    ("float amount", {"amount": 10.5}),
    ("exponent", {"amount": "1e3"}),
    ("sign", {"amount": "+10"}),
    ("negative", {"amount": "-10"}),
    ("whitespace", {"amount": " 10"}),
    ("trailing dot", {"amount": "10."}),
    ("leading dot", {"amount": ".5"}),
    ("leading zero", {"amount": "010"}),
    ("nan", {"amount": "NaN"}),
    ("infinity", {"amount": "Infinity"}),
    ("arabic digits", {"amount": "١٠"}),
    ("too many decimals", {"amount": "1.001"}),
    ("zero", {"amount": "0.00"}),
    ("over max", {"amount": "10000000000.01"}),
    ("wrong currency", {"currency": "EUR"}),
    ("bad split type", {"split_type": "magic"}),
    ("no participants", {"participants": []}),
    ("duplicate participants", {"participants": "DUP"}),
    ("unknown user", {"participants": [{"user_id": "00000000-0000-4000-8000-000000000001"}]}),
    ("payer not member", {"paid_by": "00000000-0000-4000-8000-000000000001"}),
    ("non-member participant", {"participants": "OUTSIDER"}),
    ("percentage missing", {"split_type": "percentage"}),
    ("percent sum 99", {"split_type": "percentage", "participants": "PCT99"}),
    ("percent 5 decimals", {"split_type": "percentage", "participants": "PCT5DEC"}),
    ("percent number", {"split_type": "percentage", "participants": "PCTNUM"}),
    ("exact mismatch", {"split_type": "exact", "participants": "EXACTBAD"}),
    ("exact with too many decimals", {"split_type": "exact", "participants": "EXACTDEC"}),
    ("shares string", {"split_type": "shares", "participants": "SHARESTR"}),
    ("shares float", {"split_type": "shares", "participants": "SHAREFLOAT"}),
    ("shares zero", {"split_type": "shares", "participants": "SHAREZERO"}),
    ("shares bool", {"split_type": "shares", "participants": "SHAREBOOL"}),
    ("field for other split", {"participants": "EQUALWITHAMOUNT"}),
    ("empty description", {"description": ""}),
    ("long description", {"description": "x" * 501}),
    ("extra field", {"tip": "1.00"}),
]


def _participants(tag: str, a: Who, b: Who, outsider: Who) -> list[dict[str, Any]]:
    return {
        "DUP": [{"user_id": a.id}, {"user_id": a.id}],
        "OUTSIDER": [{"user_id": a.id}, {"user_id": outsider.id}],
        "PCT99": [{"user_id": a.id, "percentage": "50"}, {"user_id": b.id, "percentage": "49"}],
        "PCT5DEC": [{"user_id": a.id, "percentage": "50.00001"}, {"user_id": b.id, "percentage": "49.99999"}],
        "PCTNUM": [{"user_id": a.id, "percentage": 50}, {"user_id": b.id, "percentage": 50}],
        "EXACTBAD": [{"user_id": a.id, "amount": "5.00"}, {"user_id": b.id, "amount": "4.99"}],
        "EXACTDEC": [{"user_id": a.id, "amount": "5.000"}, {"user_id": b.id, "amount": "5.00"}],
        "SHARESTR": [{"user_id": a.id, "shares": "2"}, {"user_id": b.id, "shares": 1}],
        "SHAREFLOAT": [{"user_id": a.id, "shares": 2.0}, {"user_id": b.id, "shares": 1}],
        "SHAREZERO": [{"user_id": a.id, "shares": 0}, {"user_id": b.id, "shares": 1}],
        "SHAREBOOL": [{"user_id": a.id, "shares": True}, {"user_id": b.id, "shares": 1}],
        "EQUALWITHAMOUNT": [{"user_id": a.id, "amount": "5.00"}, {"user_id": b.id}],
    }[tag]


@pytest.mark.parametrize(("case", "override"), INVALID, ids=[c for c, _ in INVALID])
def test_invalid_expense_is_422_and_writes_nothing(api: Api, db_url: URL, case: str, override: dict[str, Any]) -> None:
    a, b, outsider = api.user(), api.user(), api.user()
    gid = api.group(a, members=(b,))
    body = _payload(a, b, **override)
    if isinstance(body["participants"], str):
        body["participants"] = _participants(body["participants"], a, b, outsider)
    before = counts(db_url)
    headers = a.headers | {"Idempotency-Key": f"k-{case}"}
    r = api.client.post(f"/v1/groups/{gid}/expenses", json=body, headers=headers)
    assert_problem(r, 422)
    assert "errors" in r.json()
    assert counts(db_url) == before  # no expense row, no ledger entry, no idempotency record


def test_more_than_200_participants_is_422(api: Api, db_url: URL) -> None:
    a = api.user()
    gid = api.group(a)
    parts = [{"user_id": f"00000000-0000-4000-8000-{i:012d}"} for i in range(201)]
    before = counts(db_url)
    r = api.client.post(f"/v1/groups/{gid}/expenses", json=_payload(a, a, participants=parts), headers=a.headers)
    assert_problem(r, 422)
    assert counts(db_url) == before


def test_get_and_list_expenses(api: Api) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    created = [api.expense(a, gid, f"{i}.00", a, [a, b]).json() for i in range(1, 6)]
    got = api.client.get(f"/v1/groups/{gid}/expenses/{created[0]['id']}", headers=b.headers).json()
    assert got == created[0]
    ids: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.client.get(f"/v1/groups/{gid}/expenses", params=params, headers=a.headers).json()
        ids += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert ids == [e["id"] for e in reversed(created)]
    assert_problem(api.client.get(f"/v1/groups/{gid}/expenses/{gid}", headers=a.headers), 404)
    # A ledger cursor is not an expense cursor.
    ledger = api.client.get(f"/v1/groups/{gid}/ledger", params={"limit": 1}, headers=a.headers).json()
    r = api.client.get(f"/v1/groups/{gid}/expenses", params={"cursor": ledger["next_cursor"]}, headers=a.headers)
    assert_problem(r, 400)


def test_edit_reverses_and_reposts(api: Api, db_url: URL) -> None:
    a, b, c = api.user(), api.user(), api.user()
    gid = api.group(a, members=(b, c))
    e = api.expense(a, gid, "30.00", a, [a, b, c]).json()
    new = _payload(b, c, amount="12.00", paid_by=b.id, participants=[{"user_id": b.id}, {"user_id": c.id}])
    r = api.client.put(f"/v1/groups/{gid}/expenses/{e['id']}", json=new, headers=c.headers)
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["version"] == 2 and edited["amount"] == "12.00" and edited["created_at"] == e["created_at"]
    assert api.nets(a, gid) == {a.id: "0.00", b.id: "6.00", c.id: "-6.00"}
    kinds = run_sql(
        db_url, "SELECT kind, count(*) n FROM ledger_entries WHERE expense_id = $1::uuid GROUP BY kind", e["id"]
    )
    assert {r["kind"]: r["n"] for r in kinds} == {"expense": 4 + 3, "reversal": 4}
    assert api.client.get(f"/v1/groups/{gid}/expenses/{e['id']}", headers=a.headers).json() == edited
    assert_ledger_matches_balances(db_url)


def test_invalid_edit_writes_nothing(api: Api, db_url: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    e = api.expense(a, gid, "30.00", a, [a, b]).json()
    before = counts(db_url)
    r = api.client.put(f"/v1/groups/{gid}/expenses/{e['id']}", json=_payload(a, b, amount="1e3"), headers=a.headers)
    assert_problem(r, 422)
    outsider = api.user()
    r = api.client.put(
        f"/v1/groups/{gid}/expenses/{e['id']}",
        json=_payload(a, outsider, participants=[{"user_id": outsider.id}]),
        headers=a.headers,
    )
    assert_problem(r, 422)
    assert counts(db_url) == before | {"users": before["users"] + 1}
    assert api.client.get(f"/v1/groups/{gid}/expenses/{e['id']}", headers=a.headers).json()["version"] == 1


def test_void_restores_balances_and_is_repeatable(api: Api, db_url: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    keep = api.expense(a, gid, "8.00", a, [a, b]).json()
    e = api.expense(b, gid, "30.00", b, [a, b]).json()
    r = api.client.delete(f"/v1/groups/{gid}/expenses/{e['id']}", headers=a.headers)
    assert r.status_code == 200
    voided = r.json()
    assert voided["voided_at"] is not None and voided["version"] == 1
    assert api.nets(a, gid) == {a.id: "4.00", b.id: "-4.00"}
    entries = counts(db_url)["ledger_entries"]
    again = api.client.delete(f"/v1/groups/{gid}/expenses/{e['id']}", headers=b.headers)
    assert again.status_code == 200 and again.json() == voided
    assert counts(db_url)["ledger_entries"] == entries
    r = api.client.put(f"/v1/groups/{gid}/expenses/{e['id']}", json=_payload(a, b), headers=a.headers)
    assert_problem(r, 409, "expense-not-editable")
    assert keep["voided_at"] is None
    assert_ledger_matches_balances(db_url)


def test_edit_or_void_with_departed_member_is_409(api: Api, db_url: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    e = api.expense(a, gid, "10.00", a, [a, b]).json()
    api.settle(b, gid, b, a, "5.00")
    assert api.client.delete(f"/v1/groups/{gid}/members/{b.id}", headers=a.headers).status_code == 204
    before = counts(db_url)
    solo = _payload(a, a, participants=[{"user_id": a.id}])
    assert_problem(api.client.put(f"/v1/groups/{gid}/expenses/{e['id']}", json=solo, headers=a.headers), 409)
    assert_problem(api.client.delete(f"/v1/groups/{gid}/expenses/{e['id']}", headers=a.headers), 409)
    assert counts(db_url) == before
