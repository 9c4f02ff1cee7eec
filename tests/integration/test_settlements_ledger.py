import asyncio
import random
import subprocess
import sys
import uuid
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import URL

from app.infra.config import PROJECT_ROOT
from tests.api import Api, Who, assert_problem
from tests.dbutil import counts, dsn, run_sql
from tests.integration.test_expenses import assert_ledger_matches_balances


def test_settlement_moves_balances(api: Api, db_url: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    api.expense(a, gid, "10.00", a, [a, b])
    r = api.client.post(
        f"/v1/groups/{gid}/settlements",
        json={"from_user_id": b.id, "to_user_id": a.id, "amount": "2.5", "note": "cash"},
        headers=b.headers,
    )
    assert r.status_code == 201, r.text
    s = r.json()
    assert set(s) == {
        "id",
        "group_id",
        "from_user_id",
        "to_user_id",
        "amount",
        "currency",
        "note",
        "created_by",
        "created_at",
        "voided_at",  # Contract v2
    }
    assert s["amount"] == "2.50" and s["currency"] == "USD" and s["note"] == "cash" and s["created_by"] == b.id
    assert api.nets(a, gid) == {a.id: "2.50", b.id: "-2.50"}
    page = api.client.get(f"/v1/groups/{gid}/settlements", headers=a.headers).json()
    assert page["items"] == [s] and page["next_cursor"] is None
    assert_ledger_matches_balances(db_url)


@pytest.mark.parametrize(
    "case",
    ["exceeds", "exceeds_payee", "same", "outsider", "zero", "number", "decimals", "missing", "wrong_direction"],
)
def test_invalid_settlement_is_422_and_writes_nothing(api: Api, db_url: URL, case: str) -> None:
    a, b, c, outsider = api.user(), api.user(), api.user(), api.user()
    gid = api.group(a, members=(b, c))
    api.expense(a, gid, "10.00", a, [a, b])  # b owes a 5.00
    api.expense(c, gid, "2.00", c, [b, c])  # b owes c 1.00
    body: dict[str, Any] = {"from_user_id": b.id, "to_user_id": a.id, "amount": "5.00"}
    body |= {
        "exceeds": {"amount": "6.01"},  # b owes 6.00 in all, a is owed 5.00
        "exceeds_payee": {"to_user_id": c.id, "amount": "1.01"},
        "same": {"to_user_id": b.id},
        "outsider": {"to_user_id": outsider.id},
        "zero": {"amount": "0"},
        "number": {"amount": 5},
        "decimals": {"amount": "5.001"},
        "missing": {"amount": None},
        "wrong_direction": {"from_user_id": a.id, "to_user_id": b.id},
    }[case]
    if body["amount"] is None:
        del body["amount"]
    before = counts(db_url)
    r = api.client.post(f"/v1/groups/{gid}/settlements", json=body, headers=a.headers | {"Idempotency-Key": case})
    problem = assert_problem(r, 422)
    if case in ("exceeds", "exceeds_payee", "wrong_direction"):
        assert problem["type"].endswith("settlement-exceeds-balance")
    assert counts(db_url) == before


def test_settle_exactly_to_zero(api: Api) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    api.expense(a, gid, "0.03", a, [a, b])  # b owes 0.01 (a took the leftover cent) or 0.02
    net_b = api.nets(a, gid)[b.id]
    api.settle(b, gid, b, a, net_b.lstrip("-"))
    assert api.nets(a, gid) == {a.id: "0.00", b.id: "0.00"}
    bal = api.client.get(f"/v1/groups/{gid}/balances", headers=a.headers).json()
    assert bal["suggested_payments"] == []
    assert_problem(api.settle(b, gid, b, a, "0.01", expect=None), 422, "settlement-exceeds-balance")


def test_balances_and_suggested_payments(api: Api) -> None:
    users = [api.user() for _ in range(5)]
    gid = api.group(users[0], members=tuple(users[1:]))
    api.expense(users[0], gid, "100.00", users[0], users)
    api.expense(users[1], gid, "37.00", users[1], users[2:])
    bal = api.client.get(f"/v1/groups/{gid}/balances", headers=users[3].headers).json()
    assert bal["currency"] == "USD"
    nets = {b["user_id"]: int(b["net"].replace(".", "")) for b in bal["balances"]}
    assert sorted(nets) == sorted(u.id for u in users) and sum(nets.values()) == 0
    pays = bal["suggested_payments"]
    assert len(pays) <= sum(1 for n in nets.values() if n) - 1
    for p in pays:
        cents = int(p["amount"].replace(".", ""))
        assert cents > 0
        nets[p["from_user_id"]] += cents
        nets[p["to_user_id"]] -= cents
    assert set(nets.values()) == {0}
    # Paying the suggestions through the API brings every net to zero.
    for p in pays:
        body = {"from_user_id": p["from_user_id"], "to_user_id": p["to_user_id"], "amount": p["amount"]}
        assert api.client.post(f"/v1/groups/{gid}/settlements", json=body, headers=users[0].headers).status_code == 201
    assert set(api.nets(users[0], gid).values()) == {"0.00"}


def test_ledger_lists_entries_newest_first_with_signed_amounts(api: Api) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    e = api.expense(a, gid, "10.00", a, [a, b]).json()
    s = api.settle(b, gid, b, a, "1.00").json()
    api.client.delete(f"/v1/groups/{gid}/expenses/{e['id']}", headers=a.headers)
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.client.get(f"/v1/groups/{gid}/ledger", params=params, headers=b.headers).json()
        entries += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [x["kind"] for x in entries] == ["reversal"] * 3 + ["settlement"] * 2 + ["expense"] * 3
    assert {x["amount"] for x in entries if x["kind"] == "settlement"} == {"1.00", "-1.00"}
    assert all(x["settlement_id"] == s["id"] and x["expense_id"] is None for x in entries if x["kind"] == "settlement")
    assert sum(int(x["amount"].replace(".", "")) for x in entries) == 0
    assert set(entries[0]) == {"id", "user_id", "amount", "kind", "expense_id", "settlement_id", "created_at"}


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_entries SET amount_minor = amount_minor + 1",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries",
    ],
)
def test_database_refuses_to_change_ledger_entries(api: Api, db_url: URL, sql: str) -> None:
    a = api.user()
    gid = api.group(a)
    api.expense(a, gid, "1.00", a, [a])
    before = run_sql(db_url, "SELECT seq, amount_minor FROM ledger_entries ORDER BY seq")
    with pytest.raises(asyncpg.PostgresError, match="immutable"):
        run_sql(db_url, sql)
    assert run_sql(db_url, "SELECT seq, amount_minor FROM ledger_entries ORDER BY seq") == before


def _verify(db_url: URL) -> subprocess.CompletedProcess[str]:
    env = {"DATABASE_URL": dsn(db_url), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "app.verify"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_verify_command_reports_drift(api: Api, db_url: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    api.expense(a, gid, "10.00", a, [a, b])
    ok = _verify(db_url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    run_sql(db_url, "UPDATE balances SET net_minor = net_minor + 1 WHERE user_id = $1::uuid AND slot = 3", b.id)
    bad = _verify(db_url)
    assert bad.returncode == 1 and b.id in bad.stdout
    run_sql(
        db_url, "UPDATE balances SET net_minor = net_minor - 1 WHERE user_id = $1::uuid AND slot = 3", b.id
    )  # repair


def test_verify_command_reports_entries_citing_missing_rows(api: Api, db_url: URL) -> None:
    """Ledger entries have no foreign keys (migration d4f6b8c0e005): app.verify is what notices an orphan."""
    a = api.user()
    gid = api.group(a)
    ghost = str(uuid.uuid4())
    orphan = (
        "INSERT INTO ledger_entries (id, posting_id, group_id, user_id, amount_minor, kind, expense_id, expense_version,"
        " chain_slot, chain_hash)"
        " SELECT gen_random_uuid(), $1::uuid, $2::uuid, $3::uuid, x, 'expense', $4::uuid, 1, 0, '\\x00'::bytea"
        " FROM unnest(ARRAY[5, -5]) x"
    )
    run_sql(db_url, orphan, str(uuid.uuid4()), gid, a.id, ghost)  # sums to zero: no balance drifts
    try:
        bad = _verify(db_url)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert f"group={gid} user={a.id}" in bad.stdout and "cite a missing expense" in bad.stdout
    finally:
        _delete_entries_bypassing_the_trigger(db_url, ghost)
    assert _verify(db_url).returncode == 0


def _delete_entries_bypassing_the_trigger(db_url: URL, expense_id: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(dsn(db_url))
        try:
            await conn.execute("SET session_replication_role = replica")
            await conn.execute("DELETE FROM ledger_entries WHERE expense_id = $1::uuid", expense_id)
        finally:
            await conn.close()

    asyncio.run(go())


def test_long_random_sequence_keeps_every_invariant(api: Api, db_url: URL) -> None:
    rng = random.Random(20261126)
    users = [api.user() for _ in range(5)]
    gid = api.group(users[0], members=tuple(users[1:]))
    model = {u.id: 0 for u in users}
    live: dict[str, dict[str, Any]] = {}

    def apply(body: dict[str, Any], sign: int) -> None:
        model[body["paid_by"]] += sign * int(body["amount"].replace(".", ""))
        for s in body["shares"]:
            model[s["user_id"]] -= sign * int(s["amount"].replace(".", ""))

    for step in range(150):
        op = rng.random()
        actor = rng.choice(users)
        if op < 0.5 or not live:
            parts = rng.sample(users, rng.randint(1, 5))
            split = rng.choice(["equal", "shares", "percentage", "exact"])
            amount = rng.randint(1, 50_000)
            plist: list[Any] = _parts(rng, split, parts, amount)
            body = api.expense(
                actor, gid, f"{amount // 100}.{amount % 100:02d}", rng.choice(users), plist, split_type=split
            ).json()
            live[body["id"]] = body
            apply(body, +1)
        elif op < 0.65:
            eid = rng.choice(list(live))
            apply(live.pop(eid), -1)
            assert api.client.delete(f"/v1/groups/{gid}/expenses/{eid}", headers=actor.headers).status_code == 200
        elif op < 0.8:
            eid = rng.choice(list(live))
            parts = rng.sample(users, rng.randint(1, 5))
            body = {
                "description": f"edit {step}",
                "amount": "7.77",
                "paid_by": rng.choice(users).id,
                "split_type": "equal",
                "participants": [{"user_id": p.id} for p in parts],
            }
            r = api.client.put(f"/v1/groups/{gid}/expenses/{eid}", json=body, headers=actor.headers)
            assert r.status_code == 200, r.text
            apply(live[eid], -1)
            live[eid] = r.json()
            apply(live[eid], +1)
        else:
            debtors = [u for u in users if model[u.id] < 0]
            creditors = [u for u in users if model[u.id] > 0]
            if debtors and creditors:
                d, c = rng.choice(debtors), rng.choice(creditors)
                cents = rng.randint(1, min(-model[d.id], model[c.id]))
                api.settle(actor, gid, d, c, f"{cents // 100}.{cents % 100:02d}")
                model[d.id] += cents
                model[c.id] -= cents
        if step % 10 == 0:
            nets = {k: int(v.replace(".", "")) for k, v in api.nets(actor, gid).items()}
            assert nets == model and sum(nets.values()) == 0
    nets = {k: int(v.replace(".", "")) for k, v in api.nets(users[0], gid).items()}
    assert nets == model
    assert_ledger_matches_balances(db_url)


def _parts(rng: random.Random, split: str, parts: list[Who], amount: int) -> list[Any]:
    if split == "equal":
        return parts
    if split == "shares":
        return [{"user_id": p.id, "shares": rng.randint(1, 5)} for p in parts]
    if split == "percentage":
        cuts = sorted(rng.sample(range(1, 1_000_000), len(parts) - 1))
        bounds = [0, *cuts, 1_000_000]
        pcts = [bounds[i + 1] - bounds[i] for i in range(len(parts))]
        return [{"user_id": p.id, "percentage": f"{v // 10_000}.{v % 10_000:04d}"} for p, v in zip(parts, pcts)]
    cuts = sorted(rng.randint(0, amount) for _ in range(len(parts) - 1))
    bounds = [0, *cuts, amount]
    return [
        {"user_id": p.id, "amount": f"{(bounds[i + 1] - bounds[i]) // 100}.{(bounds[i + 1] - bounds[i]) % 100:02d}"}
        for i, p in enumerate(parts)
    ]
