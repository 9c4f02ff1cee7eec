"""POST /v1/groups/import: every source lands as a new group whose balances are what the file implies; a
bad file, a too large one, a failure anywhere in the write: a problem, and nothing written."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from app.domain.users import hash_token
from app.infra.config import Settings
from app.infra.db import make_engine, normalise_url
from app.main import create_app
from tests.api import Api, Who, assert_problem
from tests.dbutil import assert_ledger_invariants, counts, run_sql
from tests.groupgen import start
from tests.recurring_helpers import rule_body, run_pass

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ihatemoney"
TABLES = ("users", "groups", "memberships", "balances", "expenses", "expense_versions", "settlements",
          "ledger_entries", "activity", "idempotency_keys")  # fmt: skip
SPLITWISE = (
    "Date,Description,Category,Cost,Currency,Ann,Ben,Cat\n\n"
    "2024-01-05,Dinner,Dining out,30.00,EUR,20.00,-10.00,-10.00\n"
    "2024-01-06,Taxi,Taxi,10.00,EUR,-3.33,6.67,-3.33\n"
    "2024-01-07,Ben paid Ann,Payment,5.00,EUR,-5.00,5.00,0.00\n\n"
    "2024-02-01,Total balance, , ,EUR,11.67,1.67,-13.34\n"
)


def post(api: Api, who: Who, body: bytes, media: str, **params: str) -> httpx.Response:
    return api.client.post("/v1/groups/import", content=body, params=params,
                           headers={**who.headers, "Content-Type": media})  # fmt: skip


def nets(api: Api, who: Who, created: dict[str, Any]) -> dict[str, str]:
    names = {m["user_id"]: m["name"] for m in created["members"]}
    return {names[u]: n for u, n in api.nets(who, created["id"]).items()}


def test_ihatemoney_export_lands_with_ihatemoneys_balances(api: Api, clean_db: URL) -> None:
    me = api.user("Alice")
    r = post(api, me, (FIXTURES / "bills.json").read_bytes(), "application/json", currency="EUR", me="Alice")
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["currency"] == "EUR" and created["import"]["source"] == "ihatemoney"
    assert {(m["name"], m["guest"]) for m in created["members"]} == {("Alice", False), ("Bob", True),
                                                                     ("Chloé", True), ("Dan", True)}  # fmt: skip
    balances = json.loads((FIXTURES / "balances.json").read_text(), parse_float=Decimal)
    expected = {n: str(b.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)) for n, b in balances.items()}
    moved = {a["member"]: a for a in created["import"]["adjustments"]}
    assert {n: moved[n]["balance"] if n in moved else b for n, b in expected.items()} == nets(api, me, created)
    assert [(a["member"], a["source_balance"], a["balance"]) for a in moved.values()] == [("Chloé", "-246.94",
                                                                                           "-246.93")]  # fmt: skip
    listed = api.client.get(f"/v1/groups/{created['id']}/expenses", headers=me.headers).json()["items"]
    assert listed[0]["description"] == "Refund of the deposit"  # the newest bill lists first, as in ihatemoney
    feed = api.client.get(f"/v1/groups/{created['id']}/activity?limit=200", headers=me.headers).json()["items"]
    assert {i["type"] for i in feed} == {"member.added", "expense.created", "settlement.created"}
    assert all(i["detail"] == {"imported": "ihatemoney"} and i["actor_id"] == me.id for i in feed)
    assert_ledger_invariants(clean_db)  # balances are the ledger's sums, and its hash chain walks whole


def test_splitwise_export_lands_and_quits_own_csv_imports_back(api: Api, clean_db: URL) -> None:
    me = api.user("Ben")
    r = post(api, me, SPLITWISE.encode(), "text/csv", me="ben", name="Trip")
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["name"], created["currency"]) == ("Trip", "EUR")
    assert nets(api, me, created) == {"Ann": "11.67", "Ben": "1.67", "Cat": "-13.34"}
    assert [(a["row"], a["member"], a["amount"]) for a in created["import"]["adjustments"]] == [(4, "Cat", "-0.01")]
    # Every other person is a guest member, who can claim the place with an invite.
    cat = next(m for m in created["members"] if m["name"] == "Cat")
    assert cat["guest"] and cat["email"] is None
    invite = api.client.post(f"/v1/groups/{created['id']}/members/{cat['user_id']}/invite", headers=me.headers)
    assert invite.status_code == 201, invite.text
    claim = {"invite_code": invite.json()["invite_code"], "email": "cat@example.com"}
    assert api.client.post("/v1/users/claim", json=claim).status_code == 201
    # The group's own CSV export is a Splitwise file without a total line: it imports back the same.
    exported = api.client.get(f"/v1/groups/{created['id']}/export?format=csv", headers=me.headers)
    again = post(api, me, exported.content, "text/csv; charset=utf-8", me="Ben")
    assert again.status_code == 201, again.text
    assert nets(api, me, again.json()) == nets(api, me, created) and again.json()["import"]["adjustments"] == []
    assert_ledger_invariants(clean_db)


def test_a_bad_file_is_one_422_naming_each_row_and_nothing_is_written(api: Api, clean_db: URL) -> None:
    me = api.user()
    before = counts(clean_db, TABLES)
    bad = SPLITWISE.replace("-10.00,-10.00", "-10.00,ten").replace("2024-01-06", "06/01/2024")
    body = assert_problem(post(api, me, bad.encode(), "text/csv"), 422, "validation-error")
    assert [e["loc"] for e in body["errors"]] == [["body", 3, "Cat"], ["body", 4, "Date"]]
    assert_problem(post(api, me, b"[1, 2", "application/json"), 422)
    assert_problem(post(api, me, b"\xff\xfe", "text/csv"), 422)
    assert_problem(post(api, me, b"a,b", "text/plain"), 415, "unsupported-media-type")
    assert_problem(post(api, me, SPLITWISE.encode(), "text/csv", me="Zed"), 422)
    assert_problem(post(api, me, SPLITWISE.encode(), "text/csv", currency="usd"), 422)
    assert_problem(api.client.post("/v1/groups/import", content=SPLITWISE, headers={"Content-Type": "text/csv"}), 401)
    assert counts(clean_db, TABLES) == before


def test_limits_413_over_the_route_limit_and_422_over_the_row_limit(api: Api, clean_db: URL) -> None:
    me = api.user()
    before = counts(clean_db, TABLES)
    big = b"Date,Description,Category,Cost,Currency,A,B\n" + b"x" * (20 * 1024 * 1024)
    assert_problem(post(api, me, big, "text/csv"), 413, "body-too-large")
    # The other routes keep their own, smaller limit.
    assert_problem(api.client.post("/v1/groups", content=b"x" * 300_000, headers=me.headers), 413)
    rows = b"2024-01-05,x,,1.00,EUR,1.00,-1.00\n" * 100_001
    body = assert_problem(post(api, me, b"Date,Description,Category,Cost,Currency,A,B\n" + rows, "text/csv"), 422)
    assert "100000" in body["detail"] and body["errors"][0]["loc"] == ["body"]
    assert counts(clean_db, TABLES) == before


def test_a_failure_inside_the_write_leaves_nothing(api: Api, clean_db: URL) -> None:
    """Each row is valid, the total is past the balance limit: the database refuses it after it has
    made the group, its guests and records, and all of it goes."""
    me = api.user("Ann")
    before = counts(clean_db, TABLES)
    row = b"2024-01-05,x,,10000000000.00,EUR,10000000000.00,-10000000000.00\n"
    r = post(api, me, b"Date,Description,Category,Cost,Currency,Ann,Ben\n" + row * 1_001, "text/csv")
    assert_problem(r, 422, "balance-limit-exceeded")
    assert counts(clean_db, TABLES) == before


def test_idempotency_key_replays_and_refuses_another_request(api: Api, clean_db: URL) -> None:
    me = api.user("Ann")
    headers = {**me.headers, "Content-Type": "text/csv", "Idempotency-Key": "import-1"}
    first = api.client.post("/v1/groups/import", content=SPLITWISE, headers=headers)
    assert first.status_code == 201, first.text
    after = counts(clean_db, TABLES)
    again = api.client.post("/v1/groups/import", content=SPLITWISE, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json() and again.headers["Location"] == first.headers["Location"]
    other = api.client.post("/v1/groups/import", content=SPLITWISE, params={"name": "x"}, headers=headers)
    assert_problem(other, 422, "idempotency-key-reused")
    assert counts(clean_db, TABLES) == after


def test_a_quits_export_by_someone_else_gives_the_caller_a_fresh_place(api: Api) -> None:
    built = start(api, members=1, guests=1)
    owner, member, guest = built.members
    api.expense(owner, built.gid, "9.00", guest, [owner, member, guest])
    doc = api.client.get(f"/v1/groups/{built.gid}/export", headers=owner.headers).content
    stranger = api.user("Stranger")
    created = post(api, stranger, doc, "application/json").json()
    assert len(created["members"]) == 4 and nets(api, stranger, created)["Stranger"] == "0.00"
    mine = post(api, stranger, doc, "application/json", me=built.names[member.id]).json()
    assert nets(api, stranger, mine)["Stranger"] == "-3.00" and len(mine["members"]) == 3


def test_database_unavailable_is_503_with_retry_after(settings: Settings, clean_db: URL) -> None:
    """The caller's token is in the worker's cache; then the database goes away under the import's write and
    under the export: 503 with Retry-After, nothing written."""
    nowhere = "postgresql://postgres@127.0.0.1:1/nowhere"
    with TestClient(create_app(settings)) as c:
        api = Api(c)
        me = api.user("Ann")
        gid = api.group(me)
        user = c.app.state.token_cache.get(hash_token(me.token))  # type: ignore[attr-defined]
        c.app.state.token_cache.put(hash_token(me.token), user, read_at=time.monotonic() + 3600)  # type: ignore[attr-defined]
        before = counts(clean_db, TABLES)
        good_pool, good_engine = c.app.state.write_pool, c.app.state.engine  # type: ignore[attr-defined]
        c.app.state.write_pool = c.portal.call(_pool, nowhere)  # type: ignore[attr-defined, union-attr]
        r = post(api, me, SPLITWISE.encode(), "text/csv")
        assert_problem(r, 503) and r.headers["Retry-After"]
        c.app.state.engine = make_engine(normalise_url(nowhere), settings)  # type: ignore[attr-defined]
        r = c.get(f"/v1/groups/{gid}/export", headers=me.headers)
        assert_problem(r, 503) and r.headers["Retry-After"]
        c.portal.call(c.app.state.engine.dispose)  # type: ignore[attr-defined, union-attr]
        c.app.state.write_pool, c.app.state.engine = good_pool, good_engine  # type: ignore[attr-defined]
        assert counts(clean_db, TABLES) == before


async def _pool(dsn: str) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=0, timeout=1)


def test_text_the_database_cannot_hold_is_a_422(api: Api, clean_db: URL) -> None:
    me = api.user()
    before = counts(clean_db, TABLES)
    header = "Date,Description,Category,Cost,Currency,Ann,Ben\n"
    for row in ("2024-01-05,x,Food\x00,1.00,EUR,1.00,-1.00\n", "2024-01-05,A\x00 paid B,Payment,1.00,EUR,1.00,-1.00\n",
                "2024-01-05," + "x" * 200_000 + ",,1.00,EUR,1.00,-1.00\n"):  # fmt: skip
        body = assert_problem(post(api, me, (header + row).encode(), "text/csv"), 422)
        assert body["errors"][0]["loc"][:2] == ["body", 2]
    assert counts(clean_db, TABLES) == before


def test_recurring_occurrences_export_with_their_rule_and_import_as_ordinary_expenses(
    api: Api, client: TestClient, clean_db: URL
) -> None:
    a, b = api.user("A"), api.user("B")
    gid = api.group(a, members=(b,))
    r = client.post(f"/v1/groups/{gid}/recurring", json=rule_body(a, [a, b], amount="10.01"), headers=a.headers)
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]
    assert run_pass(client, dt.date(2030, 3, 1)) == 2  # 31 January and 28 February
    doc = api.client.get(f"/v1/groups/{gid}/export?format=json", headers=a.headers).json()
    assert [e["recurring_id"] for e in doc["expenses"]] == [rule_id, rule_id]
    again = post(api, a, json.dumps(doc).encode(), "application/json")
    assert again.status_code == 201, again.text
    imported = api.client.get(f"/v1/groups/{again.json()['id']}/export?format=json", headers=a.headers).json()
    assert [e["recurring_id"] for e in imported["expenses"]] == [None, None]  # the rule is not in the file
    assert [(e["date"], e["amount"]) for e in imported["expenses"]] == [(e["date"], e["amount"]) for e in doc["expenses"]]
    assert api.nets(a, again.json()["id"])[a.id] == api.nets(a, gid)[a.id]
    assert_ledger_invariants(clean_db)


_ENTRY_TIMES = """
SELECT l.seq, l.posting_id, CASE WHEN l.kind = 'reversal' THEN coalesce(e.voided_at, s.voided_at)
                                 ELSE coalesce(e.created_at, s.created_at) END AS at
FROM ledger_entries l
LEFT JOIN expenses e ON e.group_id = l.group_id AND e.id = l.expense_id
LEFT JOIN settlements s ON s.group_id = l.group_id AND s.id = l.settlement_id
WHERE l.group_id = $1::uuid ORDER BY l.seq
"""


def test_an_imported_ledger_is_in_the_order_its_records_were_written(api: Api, clean_db: URL) -> None:
    """Entries as the records' own writes would have posted them: by the time of each write (a void's
    reversal at the void's time), each posting's entries together, so the hash chain tells the story."""
    built = start(api, members=2, guests=0)
    owner, ann, ben = built.members
    first = api.expense(owner, built.gid, "9.00", ann, [owner, ann, ben]).json()["id"]
    paid = api.settle(owner, built.gid, owner, ann, "3.00").json()["id"]
    api.expense(owner, built.gid, "4.00", ben, [ann, ben])
    for path in (f"expenses/{first}", f"settlements/{paid}"):
        assert api.client.delete(f"/v1/groups/{built.gid}/{path}", headers=owner.headers).status_code == 200
    api.expense(owner, built.gid, "6.00", owner, [owner, ben])
    doc = api.client.get(f"/v1/groups/{built.gid}/export", headers=owner.headers).content
    created = post(api, owner, doc, "application/json").json()
    rows = run_sql(clean_db, _ENTRY_TIMES, created["id"])
    assert len(rows) == 2 * 4 + 2 * 2 + 3 + 3  # a payer and three shares, voided; a voided settlement; two more
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    postings = [r["posting_id"] for r in rows]
    assert [p for p, _ in itertools.groupby(postings)] == list(dict.fromkeys(postings))  # each posting in one run
    assert_ledger_invariants(clean_db)
