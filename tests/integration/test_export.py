"""GET /v1/groups/{id}/export: the JSON document says what the API says, record by record; the CSV is one
row per live expense or settlement whose member columns sum to GET .../balances; both stream in batches."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.infra.config import Settings
from app.main import create_app
from tests.api import Api, Who, assert_problem
from tests.groupgen import add_guest, build, leave, start


def _get(api: Api, who: Who, path: str) -> Any:
    r = api.client.get(path, headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()


def _export(api: Api, who: Who, gid: str, fmt: str = "json") -> Any:
    r = api.client.get(f"/v1/groups/{gid}/export?format={fmt}", headers=who.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == f'attachment; filename="quits-{gid}.{fmt}"'
    return r.json() if fmt == "json" else r


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_json_document_is_every_resource_as_the_api_renders_it(api: Api, data: st.DataObject) -> None:
    built = build(data, api, steps=10)
    doc = _export(api, built.owner, built.gid)
    base = f"/v1/groups/{built.gid}"
    assert (doc["format"], doc["version"]) == ("quits", 1)
    assert doc["group"] == {k: v for k, v in _get(api, built.owner, base).items() if k != "members"}
    assert doc["members"] == _get(api, built.owner, f"{base}/members")
    assert [e["id"] for e in doc["expenses"]] == sorted(built.expenses, key=lambda i: [
        e["created_at"] for e in doc["expenses"] if e["id"] == i])  # fmt: skip
    for e in doc["expenses"]:
        versions = _get(api, built.owner, f"{base}/expenses/{e['id']}/versions")["items"]
        assert {k: v for k, v in e.items() if k != "versions"} == versions[-1]
        assert e["versions"] == versions[:-1]
    assert sorted(s["id"] for s in doc["settlements"]) == sorted(built.settlements)
    for s in doc["settlements"]:
        assert s == _get(api, built.owner, f"{base}/settlements/{s['id']}")
    current = {m["user_id"] for m in doc["members"]}
    cited = {p["user_id"] for e in doc["expenses"] for p in e["payers"] + e["shares"]}
    assert {m["user_id"] for m in doc["former_members"]} >= cited - current
    assert all(m["email"] is None and set(m) == {"user_id", "name", "email", "guest"} for m in doc["former_members"])


def _csv(api: Api, who: Who, gid: str) -> list[list[str]]:
    r = _export(api, who, gid, "csv")
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(r.text)))


def test_csv_columns_sum_to_the_balances_and_voided_rows_are_left_out(api: Api) -> None:
    built = start(api, members=1, guests=1)
    owner, member, guest = built.members
    spend = [
        {"description": "Dinner", "amount": "100.00", "paid_by": owner.id, "split_type": "equal",
         "participants": [{"user_id": owner.id}, {"user_id": member.id}, {"user_id": guest.id}]},
        {"description": "Hotel", "amount": "80.00", "currency": "EUR", "exchange_rate": "1.0850", "split_type": "shares",
         "payers": [{"user_id": owner.id, "amount": "50.00"}, {"user_id": member.id, "amount": "30.00"}],
         "participants": [{"user_id": member.id, "shares": 2}, {"user_id": guest.id, "shares": 1}]},
        {"description": "Voided", "amount": "7.00", "paid_by": guest.id, "split_type": "equal",
         "participants": [{"user_id": owner.id}]},
    ]  # fmt: skip
    ids = [built.post("/expenses", body).json()["id"] for body in spend]
    assert api.client.delete(f"/v1/groups/{built.gid}/expenses/{ids[2]}", headers=owner.headers).status_code == 200
    api.settle(owner, built.gid, guest, owner, "10.00")
    rows = _csv(api, owner, built.gid)
    header, body = rows[0], rows[1:]
    assert header[:5] == ["Date", "Description", "Category", "Cost", "Currency"]
    assert [r[1] for r in body] == ["Dinner", "Hotel", f"{built.names[guest.id]} paid {built.names[owner.id]}"]
    assert body[1][3:5] == ["86.80", "USD"] and body[2][2] == "Payment"  # Cost in the group's currency
    names = dict(zip(header[5:], range(5, len(header)), strict=True))
    for user_id, net in api.nets(owner, built.gid).items():
        column = names[built.names[user_id]]
        assert sum((Decimal(r[column]) for r in body), Decimal(0)) == Decimal(net), built.names[user_id]
    assert all(sum(Decimal(c) for c in r[5:]) == 0 for r in body)


def test_csv_headers_tell_equal_names_apart_and_text_never_runs_as_a_formula(api: Api) -> None:
    built = start(api, members=0, guests=0)
    sam1, sam2 = add_guest(built, "Sam"), add_guest(built, "Sam")
    plus = add_guest(built, "+Plus")
    r = built.post("/expenses", {"description": "=HYPERLINK(\"x\")", "amount": "3.00", "paid_by": sam1.id,
                                 "split_type": "equal", "category": "@risk",
                                 "participants": [{"user_id": sam2.id}, {"user_id": plus.id}]})  # fmt: skip
    assert r.status_code == 201, r.text
    header, row = _csv(api, built.owner, built.gid)
    assert sorted(header[5:]) == sorted([built.names[built.owner.id], "Sam", "Sam #2", "'+Plus"])
    assert row[1:3] == ["'=HYPERLINK(\"x\")", "'@risk"]


def test_former_members_are_kept_for_the_rows_they_are_in(api: Api) -> None:
    built = start(api, members=1, guests=0)
    owner, member = built.members
    api.expense(owner, built.gid, "20.00", owner, [owner, member])
    leave(built, member)
    doc = _export(api, owner, built.gid)
    assert [m["user_id"] for m in doc["former_members"]] == [member.id]
    header, *body = _csv(api, owner, built.gid)
    assert header[-1] == built.names[member.id] and [r[-1] for r in body] == ["-10.00", "10.00"]


def test_export_errors(api: Api) -> None:
    a, stranger = api.user(), api.user()
    gid = api.group(a)
    assert_problem(api.client.get(f"/v1/groups/{gid}/export", headers=stranger.headers), 404, "not-found")
    assert_problem(api.client.get(f"/v1/groups/{gid}/export?format=xml", headers=a.headers), 422)
    assert_problem(api.client.get(f"/v1/groups/{gid}/export"), 401)


@pytest.fixture
def small_batches(settings: Settings, clean_db: Any) -> Iterator[Api]:
    with TestClient(create_app(settings.model_copy(update={"export_batch_rows": 100}))) as c:
        yield Api(c)


def test_a_group_larger_than_a_batch_streams_whole(small_batches: Api) -> None:
    api = small_batches
    built = start(api, members=1, guests=0)
    owner, member = built.members
    for i in range(230):
        api.expense(owner, built.gid, f"{i + 1}.00", owner if i % 2 else member, [owner, member])
    for _ in range(120):
        api.settle(owner, built.gid, member, owner, "0.01")
    doc = _export(api, owner, built.gid)
    assert len(doc["expenses"]) == 230 and len(doc["settlements"]) == 120
    assert [e["amount"] for e in doc["expenses"]] == [f"{i + 1}.00" for i in range(230)]
    header, *body = _csv(api, owner, built.gid)
    assert len(body) == 350
    for user_id, net in api.nets(owner, built.gid).items():
        column = header.index(built.names[user_id])
        assert sum((Decimal(r[column]) for r in body), Decimal(0)) == Decimal(net)


def test_csv_rows_interleave_expenses_and_settlements_by_time_across_batches(small_batches: Api) -> None:
    api = small_batches
    built = start(api, members=1, guests=0)
    owner, member = built.members
    for i in range(130):  # 260 rows alternating, in batches of 100
        api.expense(owner, built.gid, f"{i + 1}.00", owner, [owner, member])
        api.settle(owner, built.gid, member, owner, "0.01")
    _header, *body = _csv(api, owner, built.gid)
    payment = f"{built.names[member.id]} paid {built.names[owner.id]}"
    assert [r[2] for r in body] == ["", "Payment"] * 130
    assert [r[1] == payment for r in body] == [False, True] * 130
    assert [r[3] for r in body[::2]] == [f"{i + 1}.00" for i in range(130)]


def test_an_empty_groups_csv_is_its_header(api: Api) -> None:
    built = start(api, members=1, guests=0)
    rows = _csv(api, built.owner, built.gid)
    assert len(rows) == 1 and rows[0][:5] == ["Date", "Description", "Category", "Cost", "Currency"]
