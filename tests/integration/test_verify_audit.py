"""app.ledger.audit: entries that differ from the expense version or settlement they cite are found,
even when the balances were altered to match (as an attacker with the owner's password would)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import asyncpg
from sqlalchemy.engine import URL

from app.infra.config import PROJECT_ROOT, Settings
from app.infra.db import make_engine
from app.ledger.reads import Drift, find_drift
from tests.api import Api
from tests.dbutil import dsn, owner_url, run_sql


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
    records = [d for d in found if d.what.startswith("expense")]
    assert {d.what for d in records} == {f"expense {e['id']} version 1: the ledger does not hold what it says"}
    assert {(str(d.user_id), d.balance_minor - d.ledger_minor) for d in records} == {(b.id, -100), (a.id, 100)}
    # The hash chain names exactly the two rewritten entries (migration c9e1f3a5b011).
    altered = run_sql(clean_db, "SELECT id::text, seq, chain_slot FROM ledger_entries WHERE expense_id = $1"
                                " AND kind = 'expense' AND NOT (user_id = $2 AND amount_minor < 0) ORDER BY seq",
                      uuid.UUID(e["id"]), uuid.UUID(a.id))  # fmt: skip
    assert len(altered) == 2
    named = {d.what for d in found if d.what.startswith("ledger entry")}
    assert named == {f"ledger entry {r['id']} (seq {r['seq']}, chain {r['chain_slot']}): its hash does not follow"
                     " from the chain" for r in altered}  # fmt: skip
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


def _verify(db_url: URL, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"DATABASE_URL": dsn(db_url), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "app.verify", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_verify_names_an_entry_the_owner_role_rewrote(api: Api, clean_db: URL) -> None:
    """The tables' owner can switch the immutability trigger off (a superuser-free attacker with the
    owner's password could): the hash chain still names the entry it changed."""
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    api.expense(a, gid, "10.00", a, [a, b])
    clean = _verify(clean_db, "--heads")
    assert clean.returncode == 0 and "HEAD group=" + gid in clean.stdout, clean.stdout + clean.stderr
    entry = run_sql(clean_db, "SELECT id::text FROM ledger_entries WHERE user_id = $1 ORDER BY seq", uuid.UUID(b.id))
    victim = entry[0]["id"]

    async def as_owner(sql: str) -> None:
        conn = await asyncpg.connect(dsn(owner_url(clean_db)))
        try:
            await conn.execute("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_immutable")
            await conn.execute(sql, uuid.UUID(victim))
            await conn.execute("ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_immutable")
        finally:
            await conn.close()

    asyncio.run(as_owner("UPDATE ledger_entries SET amount_minor = amount_minor - 1 WHERE id = $1"))
    try:
        bad = _verify(clean_db)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert f"ledger entry {victim} " in bad.stdout and "does not follow from the chain" in bad.stdout
    finally:
        asyncio.run(as_owner("UPDATE ledger_entries SET amount_minor = amount_minor + 1 WHERE id = $1"))
    assert _verify(clean_db).returncode == 0


def test_verify_exit_codes_and_help(clean_db: URL) -> None:
    helped = subprocess.run([sys.executable, "-m", "app.verify", "--help"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert helped.returncode == 0 and "Exit status" in helped.stdout and "--heads" in helped.stdout
    down = subprocess.run(
        [sys.executable, "-m", "app.verify"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
        env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert down.returncode == 2, down.stdout + down.stderr
