"""Contract v2 under real concurrency (a multi-worker server, parallel clients): racing edits with the
same If-Match, and a settlement void racing new settlements."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable

import httpx

from tests.api import Who, assert_problem
from tests.concurrency.helpers import Live, minor, settlement_overshoots, storm

EDITORS = 8
SETTLERS = 6


def _warm(who: Who) -> Callable[[httpx.Client], object]:
    return lambda c: c.get("/v1/users/me", headers=who.headers)


def test_racing_edits_with_the_same_if_match_one_wins_the_rest_get_412(live: Live) -> None:
    api = live.api()
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    e = api.expense(a, gid, "10.00", a, [a, b]).json()
    path = f"/v1/groups/{gid}/expenses/{e['id']}"

    def edit(n: int) -> Callable[[httpx.Client], httpx.Response]:
        body = {"description": f"edit {n}", "amount": f"{20 + n}.00", "paid_by": a.id, "split_type": "equal",
                "participants": [{"user_id": a.id}, {"user_id": b.id}]}  # fmt: skip
        return lambda c: c.put(path, json=body, headers={**a.headers, "If-Match": '"1"'})

    responses = storm(live.base_url, [edit(n) for n in range(EDITORS)], warm=_warm(a))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 412: EDITORS - 1}, statuses
    for r in responses:
        if r.status_code == 412:
            assert_problem(r, 412, "precondition-failed")
    winner = next(r.json() for r in responses if r.status_code == 200)
    current = api.client.get(path, headers=a.headers).json()
    assert current == winner and current["version"] == 2
    postings = live.sql(
        "SELECT kind, expense_version, count(DISTINCT posting_id) AS n FROM ledger_entries WHERE expense_id = $1"
        " GROUP BY kind, expense_version ORDER BY kind, expense_version",
        uuid.UUID(e["id"]),
    )
    assert [(p["kind"], p["expense_version"], p["n"]) for p in postings] == [
        ("expense", 1, 1), ("expense", 2, 1), ("reversal", 1, 1)]  # fmt: skip
    owed_b = next(minor(x["amount"], 2) for x in current["shares"] if x["user_id"] == b.id)
    assert minor(api.nets(a, gid)[b.id], 2) == -owed_b  # only the winner's version is on the ledger
    versions = api.client.get(f"{path}/versions", headers=a.headers).json()["items"]
    assert [v["version"] for v in versions] == [1, 2]


def test_a_settlement_void_racing_new_settlements_never_overshoots(live: Live) -> None:
    api = live.api()
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    api.expense(a, gid, "100.00", a, [b])  # b owes a 100.00
    s = api.settle(b, gid, b, a, "60.00").json()  # now 40.00
    void = lambda c: c.delete(f"/v1/groups/{gid}/settlements/{s['id']}", headers=b.headers)  # noqa: E731
    pay = lambda c: c.post(  # noqa: E731
        f"/v1/groups/{gid}/settlements", json={"from_user_id": b.id, "to_user_id": a.id, "amount": "30.00"},
        headers=b.headers,
    )
    responses = storm(live.base_url, [void] + [pay] * SETTLERS, warm=_warm(b))
    assert responses[0].status_code == 200, responses[0].text
    paid = [r for r in responses[1:] if r.status_code == 201]
    for r in responses[1:]:
        if r.status_code != 201:
            assert_problem(r, 422, "settlement-exceeds-balance")
    # Before the void at most one 30.00 fits (40.00 owed); after it, 100.00 less what was paid.
    assert 1 <= len(paid) <= 3, [r.status_code for r in responses]
    assert settlement_overshoots(live) == []
    net_b = minor(api.nets(a, gid)[b.id], 2)
    assert net_b == -10000 + 3000 * len(paid) and net_b <= 0
    reversals = live.sql("SELECT count(*) AS n FROM ledger_entries WHERE settlement_id = $1 AND kind = 'reversal'",
                         uuid.UUID(s["id"]))  # fmt: skip
    assert reversals[0]["n"] == 2
