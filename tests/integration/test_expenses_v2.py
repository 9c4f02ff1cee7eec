"""Contract v2 expenses: several payers, foreign currency, date, category, notes, list filters, history.

Every rejected payload is a 422 naming the field, and nothing is written."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy.engine import URL

from tests.api import Api, Who, assert_problem
from tests.dbutil import counts


def _body(payer: Who | None, parts: list[Who], amount: str = "100.00", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"description": "Dinner", "amount": amount, "split_type": "equal",
                            "participants": [{"user_id": p.id} for p in parts]}  # fmt: skip
    if payer is not None:
        body["paid_by"] = payer.id
    return {**body, **extra}


def _post(api: Api, who: Who, gid: str, body: dict[str, Any]) -> Any:
    return api.client.post(f"/v1/groups/{gid}/expenses", json=body, headers=who.headers)


def _trio(api: Api, currency: str = "USD") -> tuple[Who, Who, Who, str]:
    a, b, c = api.user("A"), api.user("B"), api.user("C")
    return a, b, c, api.group(a, currency=currency, members=(b, c))


def test_several_payers_are_each_credited_what_they_paid(api: Api) -> None:
    a, b, c, gid = _trio(api)
    body = _body(None, [a, b, c], "90.00", payers=[{"user_id": a.id, "amount": "60.00"},
                                                   {"user_id": b.id, "amount": "30.00"}])  # fmt: skip
    r = _post(api, a, gid, body)
    assert r.status_code == 201, r.text
    e = r.json()
    assert e["paid_by"] is None and e["group_amount"] == "90.00" and e["exchange_rate"] is None
    assert sorted((p["user_id"], p["amount"]) for p in e["payers"]) == sorted([(a.id, "60.00"), (b.id, "30.00")])
    assert api.nets(a, gid) == {a.id: "30.00", b.id: "0.00", c.id: "-30.00"}
    one = _post(api, a, gid, _body(c, [a]))
    assert one.json()["paid_by"] == c.id and one.json()["payers"] == [{"user_id": c.id, "amount": "100.00"}]


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"payers": [{"user_id": "A", "amount": "100.00"}]}, ["body", "payers"]),  # both paid_by and payers
        ({"paid_by": None}, ["body", "payers"]),  # neither
        ({"paid_by": None, "payers": [{"user_id": "A", "amount": "60.00"}]}, ["body", "payers"]),  # sum
        ({"paid_by": None, "payers": [{"user_id": "A", "amount": "50.00"}, {"user_id": "A", "amount": "50.00"}]},
         ["body", "payers"]),  # duplicate
        ({"paid_by": None, "payers": [{"user_id": "A", "amount": "100.00"}, {"user_id": "B", "amount": "0.00"}]},
         ["body", "payers", 1, "amount"]),  # zero
        ({"paid_by": None, "payers": [{"user_id": "A", "amount": "100.001"}]}, ["body", "payers", 0, "amount"]),
        ({"paid_by": None, "payers": [{"user_id": "D", "amount": "100.00"}]}, ["body", "payers"]),  # not a member
        ({"paid_by": None, "payers": []}, ["body", "payers"]),
        ({"date": "2026-02-30"}, ["body", "date"]),
        ({"date": "26-01-01"}, ["body", "date"]),
        ({"date": "1899-12-31"}, ["body", "date"]),
        ({"category": ""}, ["body", "category"]),
        ({"category": "x" * 51}, ["body", "category"]),
        ({"notes": "x" * 2001}, ["body", "notes"]),
        ({"currency": "EUR"}, ["body", "exchange_rate"]),  # a foreign currency needs a rate
        ({"exchange_rate": "1.5"}, ["body", "exchange_rate"]),  # the group's currency: absent or 1
        ({"currency": "EUR", "exchange_rate": "0"}, ["body", "exchange_rate"]),
        ({"currency": "EUR", "exchange_rate": "1e2"}, ["body", "exchange_rate"]),
        ({"currency": "EUR", "exchange_rate": 1.1}, ["body", "exchange_rate"]),
        ({"currency": "XYZ", "exchange_rate": "1.1"}, ["body", "currency"]),
        ({"currency": "EUR", "exchange_rate": "0.0000000001", "amount": "0.01"}, ["body", "amount"]),  # T = 0
    ],
)
def test_bad_v2_fields_are_422_naming_the_field_and_write_nothing(
    api: Api, clean_db: URL, change: dict[str, Any], loc: list[Any]
) -> None:
    a, b, _c, gid = _trio(api)
    d = api.user("D")
    ids = {"A": a.id, "B": b.id, "D": d.id}
    for payer in change.get("payers") or []:
        payer["user_id"] = ids[payer["user_id"]]
    body = {**_body(a, [a, b]), **change}
    if body.get("paid_by") is None:
        body.pop("paid_by", None)
    before = counts(clean_db)
    r = _post(api, a, gid, body)
    problem = assert_problem(r, 422)
    assert next(e["loc"] for e in problem["errors"])[: len(loc)] == loc, problem
    assert counts(clean_db) == before


def test_foreign_currency_converts_with_explicit_rounding(api: Api) -> None:
    a, b, c, gid = _trio(api, currency="EUR")
    # 1000 JPY at 0.0061 EUR per JPY = 6.10 EUR; three ways: 2.04 + 2.03 + 2.03 by largest remainder.
    r = _post(api, a, gid, _body(a, [a, b, c], "1000", currency="JPY", exchange_rate="0.0061"))
    assert r.status_code == 201, r.text
    e = r.json()
    assert (e["amount"], e["currency"], e["exchange_rate"], e["group_amount"]) == ("1000", "JPY", "0.0061", "6.10")
    assert sum(int(s["amount"].replace(".", "")) for s in e["shares"]) == 610
    assert sorted(s["amount"] for s in e["shares"]) == ["2.03", "2.03", "2.04"]
    assert e["payers"] == [{"user_id": a.id, "amount": "6.10"}]
    nets = api.nets(a, gid)
    assert sum(int(v.replace(".", "").replace("-", "")) * (-1 if v.startswith("-") else 1) for v in nets.values()) == 0
    assert nets[a.id] == format(6.10 - float(next(s["amount"] for s in e["shares"] if s["user_id"] == a.id)), ".2f")
    ones = _post(api, a, gid, _body(a, [a], "5.00", exchange_rate="1.0000"))
    assert ones.status_code == 201 and ones.json()["exchange_rate"] is None and ones.json()["currency"] == "EUR"


def test_exact_split_in_a_foreign_currency_keeps_a_zero_part_zero(api: Api) -> None:
    a, b, c, gid = _trio(api, currency="USD")
    body = {**_body(None, [a]), "currency": "KWD", "exchange_rate": "3.25", "amount": "1.000",
            "payers": [{"user_id": b.id, "amount": "0.333"}, {"user_id": c.id, "amount": "0.667"}],
            "split_type": "exact",
            "participants": [{"user_id": a.id, "amount": "0.999"}, {"user_id": b.id, "amount": "0.000"},
                             {"user_id": c.id, "amount": "0.001"}]}  # fmt: skip
    r = _post(api, a, gid, body)
    assert r.status_code == 201, r.text
    e = r.json()
    assert e["group_amount"] == "3.25"
    shares = {s["user_id"]: s["amount"] for s in e["shares"]}
    assert shares[b.id] == "0.00" and shares[a.id] == "3.25" and shares[c.id] == "0.00"
    paid = {p["user_id"]: p["amount"] for p in e["payers"]}
    assert paid == {b.id: "1.08", c.id: "2.17"}  # 1.08225 and 2.16775: the leftover cent to the larger fraction


def test_date_category_notes_and_the_list_filters(api: Api) -> None:
    a, b, _, gid = _trio(api)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    plain = _post(api, a, gid, _body(a, [a, b])).json()
    assert plain["date"] == today and plain["category"] is None and plain["notes"] is None
    food = _post(api, a, gid, _body(a, [a, b], date="2026-01-15", category="food", notes="birthday")).json()
    assert (food["date"], food["category"], food["notes"]) == ("2026-01-15", "food", "birthday")
    _post(api, a, gid, _body(a, [a, b], date="2026-02-01", category="taxi"))

    def listed(query: str) -> list[str]:
        r = api.client.get(f"/v1/groups/{gid}/expenses?{query}", headers=a.headers)
        assert r.status_code == 200, r.text
        return [e["date"] for e in r.json()["items"]]

    assert listed("category=food") == ["2026-01-15"]
    assert listed("since=2026-01-15&until=2026-02-01") == ["2026-02-01", "2026-01-15"]
    assert listed("until=2026-01-31") == ["2026-01-15"]
    assert_problem(api.client.get(f"/v1/groups/{gid}/expenses?since=2026-13-01", headers=a.headers), 422)
    # An edit without a date keeps the date; with one, changes it.
    path = f"/v1/groups/{gid}/expenses/{food['id']}"
    kept = api.client.put(path, json=_body(a, [a, b], category="food", notes="birthday!"), headers=a.headers)
    assert kept.json()["date"] == "2026-01-15" and kept.json()["version"] == 2 and kept.json()["updated_by"] == a.id


def test_a_cursor_is_bound_to_its_list_and_filters(api: Api) -> None:
    a, b, _, gid = _trio(api)
    for _ in range(3):
        _post(api, a, gid, _body(a, [a, b], category="food"))
    api.settle(a, gid, b, a, "1.00")
    api.settle(a, gid, b, a, "1.00")
    first = api.client.get(f"/v1/groups/{gid}/expenses?limit=1&category=food", headers=a.headers).json()
    cursor = first["next_cursor"]
    ok = api.client.get(f"/v1/groups/{gid}/expenses?limit=1&category=food&cursor={cursor}", headers=a.headers)
    assert ok.status_code == 200 and ok.json()["items"][0]["id"] != first["items"][0]["id"]
    for other in (f"/v1/groups/{gid}/expenses?limit=1&cursor={cursor}",
                  f"/v1/groups/{gid}/expenses?limit=1&category=taxi&cursor={cursor}",
                  f"/v1/groups/{gid}/settlements?limit=1&cursor={cursor}",
                  f"/v1/groups/{gid}/activity?limit=1&cursor={cursor}",
                  f"/v1/groups?limit=1&cursor={cursor}"):  # fmt: skip
        assert_problem(api.client.get(other, headers=a.headers), 400, "invalid-cursor")
    gid2 = api.group(a, members=(b,))
    assert_problem(api.client.get(f"/v1/groups/{gid2}/expenses?limit=1&category=food&cursor={cursor}",
                                  headers=a.headers), 400, "invalid-cursor")  # fmt: skip


def test_every_version_is_kept_with_who_made_it(api: Api) -> None:
    a, b, _, gid = _trio(api)
    e = _post(api, a, gid, _body(a, [a, b], "10.00")).json()
    path = f"/v1/groups/{gid}/expenses/{e['id']}"
    assert api.client.put(path, json=_body(a, [a, b], "20.00"), headers=b.headers).status_code == 200
    assert api.client.put(path, json=_body(b, [a, b], "30.00"), headers=a.headers).status_code == 200
    assert api.client.delete(path, headers=b.headers).status_code == 200
    versions = api.client.get(f"{path}/versions", headers=a.headers).json()["items"]
    assert [(v["version"], v["amount"], v["updated_by"]) for v in versions] == [
        (1, "10.00", a.id), (2, "20.00", b.id), (3, "30.00", a.id)]  # fmt: skip
    assert [v["voided_at"] is not None for v in versions] == [False, False, True]
    assert versions[0] == e  # stored as it was returned


def test_the_activity_feed_says_who_did_what(api: Api) -> None:
    a, b, c, gid = _trio(api)
    e = _post(api, a, gid, _body(a, [a, b], "10.00")).json()
    path = f"/v1/groups/{gid}/expenses/{e['id']}"
    api.client.put(path, json=_body(a, [a, b], "12.00"), headers=b.headers)
    s = api.settle(b, gid, b, a, "6.00").json()
    api.client.delete(f"/v1/groups/{gid}/settlements/{s['id']}", headers=c.headers)
    api.client.delete(path, headers=c.headers)
    assert api.client.delete(f"/v1/groups/{gid}/members/{c.id}", headers=a.headers).status_code == 204
    items = api.client.get(f"/v1/groups/{gid}/activity", headers=a.headers).json()["items"]
    seen = [(i["type"], i["actor_id"], i["expense_id"] or i["settlement_id"] or i["user_id"]) for i in items]
    assert seen == [
        ("member.removed", a.id, c.id),
        ("expense.voided", c.id, e["id"]),
        ("settlement.voided", c.id, s["id"]),
        ("settlement.created", b.id, s["id"]),
        ("expense.updated", b.id, e["id"]),
        ("expense.created", a.id, e["id"]),
        ("member.added", a.id, c.id),
        ("member.added", a.id, b.id),
        ("member.added", a.id, a.id),
    ]


def test_members_list(api: Api) -> None:
    a, b, c, gid = _trio(api)
    r = api.client.get(f"/v1/groups/{gid}/members", headers=a.headers)
    assert r.status_code == 200
    assert sorted(m["user_id"] for m in r.json()) == sorted([a.id, b.id, c.id])
    assert all(m["guest"] is False and m["email"] for m in r.json())
    assert_problem(api.client.get(f"/v1/groups/{gid}/members", headers=api.user().headers), 404)
