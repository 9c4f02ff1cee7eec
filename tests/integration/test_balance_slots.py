"""A member's net is split over balance slots (migration c3e5a7b9d003); every reader and checker sums them."""

from __future__ import annotations

import uuid

from sqlalchemy.engine import URL

from tests.api import Api, assert_problem
from tests.dbutil import run_sql


def _slot_count(db_url: URL) -> int:
    """The slot count, from its one definition (app/sql/quits_balance_slots.sql)."""
    return int(run_sql(db_url, "SELECT quits_balance_slots() AS n")[0]["n"])


def _slots(url: URL, gid: str, user_id: str) -> list[int]:
    rows = run_sql(
        url,
        "SELECT slot, net_minor FROM balances WHERE group_id = $1 AND user_id = $2 ORDER BY slot",
        uuid.UUID(gid),
        uuid.UUID(user_id),
    )
    assert [r["slot"] for r in rows] == list(range(_slot_count(url)))
    return [r["net_minor"] for r in rows]


def test_every_member_gets_all_slots_loses_them_on_removal_and_gets_new_ones_back(api: Api, db_url: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    assert _slots(db_url, gid, a.id) == [0] * _slot_count(db_url)
    assert _slots(db_url, gid, b.id) == [0] * _slot_count(db_url)
    assert api.client.delete(f"/v1/groups/{gid}/members/{b.id}", headers=a.headers).status_code == 204
    left = run_sql(db_url, "SELECT count(*) AS n FROM balances WHERE user_id = $1", uuid.UUID(b.id))
    assert left[0]["n"] == 0
    # Added again: a fresh set of slots, all zero, and writes work as before.
    r = api.client.post(f"/v1/groups/{gid}/members", json={"user_id": b.id}, headers=a.headers)
    assert r.status_code == 201, r.text
    assert _slots(db_url, gid, b.id) == [0] * _slot_count(db_url)
    api.expense(a, gid, "3.00", a, [a, b])
    assert api.nets(a, gid) == {a.id: "1.50", b.id: "-1.50"}


def test_expenses_spread_over_slots_and_balances_sum_them(api: Api, db_url: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    for _ in range(40):
        api.expense(a, gid, "1.00", a, [b])
    slots = _slots(db_url, gid, b.id)
    assert sum(slots) == -4000
    assert sum(1 for s in slots if s != 0) >= 2  # 40 random picks of 8 slots: all in one has p = 8^-39
    assert all(s % 100 == 0 for s in slots)  # each expense moved one slot of each user, the same one
    assert [p + q for p, q in zip(_slots(db_url, gid, a.id), slots, strict=True)] == [0] * _slot_count(db_url)
    assert api.nets(a, gid) == {a.id: "40.00", b.id: "-40.00"}


def test_settlement_limit_and_member_removal_use_the_sum_of_the_slots(api: Api, db_url: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    api.expense(a, gid, "10.00", a, [b])
    # Move b's debt around between slots (the sum, which the ledger backs, is unchanged).
    ids = (uuid.UUID(gid), uuid.UUID(b.id))
    where = "WHERE group_id = $1 AND user_id = $2"
    run_sql(db_url, f"UPDATE balances SET net_minor = CASE slot WHEN 5 THEN -1000 ELSE 0 END {where}", *ids)
    run_sql(db_url, f"UPDATE balances SET net_minor = net_minor + 300 {where} AND slot = 1", *ids)
    run_sql(db_url, f"UPDATE balances SET net_minor = net_minor - 300 {where} AND slot = 6", *ids)
    assert _slots(db_url, gid, b.id) == [0, 300, 0, 0, 0, -1000, -300, 0]
    assert api.nets(a, gid) == {a.id: "10.00", b.id: "-10.00"}
    r = api.settle(b, gid, b, a, "10.01", expect=422)
    assert_problem(r, 422, "settlement-exceeds-balance")
    assert_problem(api.client.delete(f"/v1/groups/{gid}/members/{b.id}", headers=a.headers), 409, "member-has-balance")
    api.settle(b, gid, b, a, "10.00")
    slots = _slots(db_url, gid, b.id)
    assert sum(slots) == 0 and any(s != 0 for s in slots)  # net zero, yet single slots are not
    assert api.client.delete(f"/v1/groups/{gid}/members/{b.id}", headers=a.headers).status_code == 204
