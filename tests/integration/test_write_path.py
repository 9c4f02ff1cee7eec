"""What migration e5a7c9d1f006 and the write pool's session settings change, seen from outside."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from tests.api import Api
from tests.dbutil import run_sql


def _refused(url: URL, sql: str, *args: Any) -> str:
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        run_sql(url, sql, *args)
    return str(caught.value)


def test_the_database_still_refuses_out_of_range_values(api: Api, db_url: URL) -> None:
    a, b = api.user(), api.user()
    gid = uuid.UUID(api.group(a, members=(b,)))
    ua, ub = uuid.UUID(a.id), uuid.UUID(b.id)
    expense = (
        "INSERT INTO expenses (id, group_id, description, amount_minor, currency, paid_by, split_type, shares,"
        " version, created_by, created_at, updated_at) VALUES (gen_random_uuid(), $1, 'x', $2, 'USD', $3, $4,"
        " '[]', $5, $3, now(), now())"
    )
    assert "quits_amount_minor" in _refused(db_url, expense, gid, 0, ua, "equal", 1)
    assert "quits_amount_minor" in _refused(db_url, expense, gid, 10**12 + 1, ua, "equal", 1)
    assert "quits_split_type" in _refused(db_url, expense, gid, 100, ua, "bogus", 1)
    assert "quits_version" in _refused(db_url, expense, gid, 100, ua, "equal", 0)
    settlement = (
        "INSERT INTO settlements (id, group_id, from_user_id, to_user_id, amount_minor, currency, created_by,"
        " created_at) VALUES (gen_random_uuid(), $1, $2, $3, $4, 'USD', $2, now())"
    )
    assert "quits_amount_minor" in _refused(db_url, settlement, gid, ua, ub, -5)
    assert "distinct_parties" in _refused(db_url, settlement, gid, ua, ua, 5)  # a table rule still
    entry = (
        "INSERT INTO ledger_entries (id, posting_id, group_id, user_id, amount_minor, kind, settlement_id,"
        " chain_slot, chain_hash) VALUES (gen_random_uuid(), gen_random_uuid(), $1, $2, 0, $3, gen_random_uuid(),"
        " 0, '\\x00')"
    )
    assert "quits_entry_kind" in _refused(db_url, entry, gid, ua, "gift")
    assert "kind_refs" in _refused(db_url, entry, gid, ua, "expense")  # expense entry without an expense
    slot = "INSERT INTO balances (group_id, user_id, slot) VALUES ($1, $2, $3)"
    assert "quits_balance_slot" in _refused(db_url, slot, gid, ua, 8)
    counts = run_sql(
        db_url,
        "SELECT (SELECT count(*) FROM expenses) AS e, (SELECT count(*) FROM settlements) AS s,"
        " (SELECT count(*) FROM ledger_entries) AS l",
    )[0]
    assert dict(counts) == {"e": 0, "s": 0, "l": 0}


def test_ids_are_time_ordered_version_7_on_this_server(api: Api) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    first = api.expense(a, gid, "10.00", a, [a, b]).json()
    second = api.settle(a, gid, b, a, "5.00").json()
    for value in (a.id, b.id, gid, first["id"], second["id"]):
        assert uuid.UUID(value).version == 7
    r = api.client.get(f"/v1/groups/{gid}/ledger", headers=a.headers)
    assert r.status_code == 200, r.text
    entries = r.json()["items"]
    assert len(entries) >= 4  # the expense (payer and participants), then the settlement (2)
    ids = [uuid.UUID(e["id"]) for e in entries]  # newest first
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    # quits_uuid7() (uuidv7() on PostgreSQL 18, an expression before): millisecond time first.
    assert ids[0].int >> 80 >= ids[-1].int >> 80
    assert abs((ids[-1].int >> 80) - (uuid.UUID(first["id"]).int >> 80)) < 60_000  # app and server clocks agree


def test_the_write_pool_plans_once_and_probes_indexes_even_on_tiny_tables(api: Api, client: TestClient) -> None:
    a = api.user()
    gid = uuid.UUID(api.group(a))

    async def session() -> tuple[str, str, str]:
        async with client.app.state.write_pool.acquire() as conn:  # type: ignore[attr-defined]
            plan = "\n".join(
                r[0]
                for r in await conn.fetch(
                    "EXPLAIN SELECT 1 FROM memberships WHERE group_id = $1 AND user_id = $2", gid, uuid.UUID(a.id)
                )
            )
            return await conn.fetchval("SHOW plan_cache_mode"), await conn.fetchval("SHOW enable_seqscan"), plan

    assert client.portal is not None
    mode, seqscan, plan = client.portal.call(session)
    assert (mode, seqscan) == ("force_generic_plan", "off")
    assert "Index" in plan and "Seq Scan" not in plan, plan  # one group, one member: a seq scan otherwise
