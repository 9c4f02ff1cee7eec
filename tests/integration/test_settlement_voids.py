"""Contract v2 settlements: GET one, DELETE voids it by reversal entries (not limited by balances)."""

from __future__ import annotations

from sqlalchemy.engine import URL

from tests.api import Api, assert_problem
from tests.dbutil import counts, run_sql


def test_void_reverses_the_settlement_once(api: Api, clean_db: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    api.expense(a, gid, "100.00", a, [b])
    s = api.settle(b, gid, b, a, "60.00").json()
    path = f"/v1/groups/{gid}/settlements/{s['id']}"
    got = api.client.get(path, headers=a.headers)
    assert got.status_code == 200 and got.json() == s and got.headers["ETag"] == '"1"'
    # The balances move on before the void: a void is not limited by them.
    api.expense(b, gid, "200.00", b, [a])
    assert api.nets(a, gid) == {a.id: "-160.00", b.id: "160.00"}
    voided = api.client.delete(path, headers={**a.headers, "If-Match": '"1"'})
    assert voided.status_code == 200 and voided.json()["voided_at"] and voided.headers["ETag"] == '"1-voided"'
    assert api.nets(a, gid) == {a.id: "-100.00", b.id: "100.00"}
    entries = run_sql(clean_db, "SELECT user_id::text AS u, amount_minor, kind FROM ledger_entries"
                                " WHERE settlement_id = $1 ORDER BY seq", __import__("uuid").UUID(s["id"]))  # fmt: skip
    assert [(e["u"], e["amount_minor"], e["kind"]) for e in entries] == [
        (b.id, 6000, "settlement"), (a.id, -6000, "settlement"), (b.id, -6000, "reversal"), (a.id, 6000, "reversal")]
    before = counts(clean_db)
    again = api.client.delete(path, headers=a.headers)
    assert again.status_code == 200 and again.json() == voided.json() and counts(clean_db) == before
    assert_problem(api.client.delete(path, headers={**a.headers, "If-Match": '"1"'}), 412, "precondition-failed")
    listed = api.client.get(f"/v1/groups/{gid}/settlements", headers=a.headers).json()["items"]
    assert listed[0]["voided_at"] == voided.json()["voided_at"]


def test_void_is_idempotent_with_a_key(api: Api, clean_db: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    api.expense(a, gid, "10.00", a, [b])
    s = api.settle(b, gid, b, a, "10.00").json()
    headers = {**b.headers, "Idempotency-Key": "undo-1"}
    first = api.client.delete(f"/v1/groups/{gid}/settlements/{s['id']}", headers=headers)
    after = counts(clean_db)
    replay = api.client.delete(f"/v1/groups/{gid}/settlements/{s['id']}", headers=headers)
    assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"] == "true"
    assert counts(clean_db) == after


def test_a_settlement_with_a_former_member_cannot_be_voided(api: Api, clean_db: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    api.expense(a, gid, "10.00", a, [b])
    s = api.settle(b, gid, b, a, "10.00").json()
    assert api.client.delete(f"/v1/groups/{gid}/members/{b.id}", headers=a.headers).status_code == 204
    before = counts(clean_db)
    r = api.client.delete(f"/v1/groups/{gid}/settlements/{s['id']}", headers=a.headers)
    assert_problem(r, 409, "settlement-not-voidable")
    assert counts(clean_db) == before


def test_unknown_settlements_and_outsiders_get_404(api: Api, clean_db: URL) -> None:
    a, b, outsider = api.user(), api.user(), api.user()
    gid = api.group(a, members=(b,))
    api.expense(a, gid, "10.00", a, [b])
    s = api.settle(b, gid, b, a, "5.00").json()
    before = counts(clean_db)
    missing = f"/v1/groups/{gid}/settlements/{'0' * 8}-0000-7000-8000-{'0' * 12}"
    assert_problem(api.client.get(missing, headers=a.headers), 404)
    assert_problem(api.client.delete(missing, headers=a.headers), 404)
    assert_problem(api.client.get(f"/v1/groups/{gid}/settlements/{s['id']}", headers=outsider.headers), 404)
    assert_problem(api.client.delete(f"/v1/groups/{gid}/settlements/{s['id']}", headers=outsider.headers), 404)
    assert counts(clean_db) == before
