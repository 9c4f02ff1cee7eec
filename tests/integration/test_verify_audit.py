"""app.ledger.audit: entries that differ from the expense version or settlement they cite are found,
even when the balances were altered to match (as an attacker with the owner's password would)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from sqlalchemy.engine import URL

from app.infra.config import Settings
from app.infra.db import make_engine
from app.ledger.reads import Drift, find_drift
from tests.api import Api
from tests.dbutil import dsn


def _drift(url: URL) -> list[Drift]:
    async def go() -> list[Drift]:
        engine = make_engine(url, Settings(_env_file=None))  # type: ignore[call-arg]
        try:
            async with engine.connect() as conn:
                return await find_drift(conn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _tamper(url: URL, sql: str, *args: object) -> None:
    """Rewrite rows with the triggers off, as a superuser or the tables' owner could."""

    async def go() -> None:
        conn = await asyncpg.connect(dsn(url))
        try:
            await conn.execute("SET session_replication_role = replica")
            await conn.execute(sql, *args)
        finally:
            await conn.close()

    asyncio.run(go())


def test_an_entry_and_its_balance_rewritten_together_are_still_found(api: Api, clean_db: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    e = api.expense(a, gid, "10.00", a, [a, b]).json()
    s = api.settle(b, gid, b, a, "5.00").json()
    assert _drift(clean_db) == []
    # Move 1.00 from b's debt to nobody's: the entry, the balance and the posting's other entry together.
    _tamper(clean_db, "UPDATE ledger_entries SET amount_minor = amount_minor + 100 WHERE expense_id = $1"
                      " AND user_id = $2 AND kind = 'expense'", uuid.UUID(e["id"]), uuid.UUID(b.id))  # fmt: skip
    _tamper(clean_db, "UPDATE ledger_entries SET amount_minor = amount_minor - 100 WHERE expense_id = $1"
                      " AND user_id = $2 AND kind = 'expense' AND amount_minor > 0", uuid.UUID(e["id"]),
                      uuid.UUID(a.id))  # fmt: skip
    _tamper(clean_db, "UPDATE balances SET net_minor = net_minor + 100 WHERE user_id = $1 AND slot = "
                      "(SELECT min(slot) FROM balances WHERE user_id = $1)", uuid.UUID(b.id))  # fmt: skip
    _tamper(clean_db, "UPDATE balances SET net_minor = net_minor - 100 WHERE user_id = $1 AND slot = "
                      "(SELECT min(slot) FROM balances WHERE user_id = $1)", uuid.UUID(a.id))  # fmt: skip
    found = _drift(clean_db)
    assert {d.what for d in found} == {f"expense {e['id']} version 1: the ledger does not hold what it says"}
    assert {(str(d.user_id), d.balance_minor - d.ledger_minor) for d in found} == {(b.id, -100), (a.id, 100)}
    # A settlement's amount rewritten in its row (not in the ledger) is found too.
    _tamper(clean_db, "UPDATE settlements SET amount_minor = 400 WHERE id = $1", uuid.UUID(s["id"]))
    assert any(d.what.startswith(f"settlement {s['id']}") for d in _drift(clean_db))
    _tamper(clean_db, "UPDATE settlements SET amount_minor = 500 WHERE id = $1", uuid.UUID(s["id"]))
    _tamper(clean_db, "UPDATE ledger_entries SET amount_minor = amount_minor - 100 WHERE expense_id = $1"
                      " AND user_id = $2 AND kind = 'expense'", uuid.UUID(e["id"]), uuid.UUID(b.id))  # fmt: skip
    _tamper(clean_db, "UPDATE ledger_entries SET amount_minor = amount_minor + 100 WHERE expense_id = $1"
                      " AND user_id = $2 AND kind = 'expense' AND amount_minor > 0", uuid.UUID(e["id"]),
                      uuid.UUID(a.id))  # fmt: skip
    _tamper(clean_db, "UPDATE balances SET net_minor = net_minor - 100 WHERE user_id = $1 AND slot = "
                      "(SELECT min(slot) FROM balances WHERE user_id = $1)", uuid.UUID(b.id))  # fmt: skip
    _tamper(clean_db, "UPDATE balances SET net_minor = net_minor + 100 WHERE user_id = $1 AND slot = "
                      "(SELECT min(slot) FROM balances WHERE user_id = $1)", uuid.UUID(a.id))  # fmt: skip
    assert _drift(clean_db) == []  # restored: the api fixture's own invariant check passes again


def test_a_void_without_its_reversal_is_found(api: Api, clean_db: URL) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    e = api.expense(a, gid, "10.00", a, [a, b]).json()
    _tamper(clean_db, "UPDATE expenses SET voided_at = now() WHERE id = $1", uuid.UUID(e["id"]))
    whats = {d.what for d in _drift(clean_db)}
    assert f"expense {e['id']} version 1: 1 posting(s), 0 reversal(s)" in whats
    _tamper(clean_db, "UPDATE expenses SET voided_at = NULL WHERE id = $1", uuid.UUID(e["id"]))
