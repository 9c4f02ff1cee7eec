"""Test database plumbing shared by every suite: which server, a clean state per test, raw SQL."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

from app.infra.config import PROJECT_ROOT
from app.infra.db import embedded_socket_url, ensure_database, normalise_url
from app.infra.roles import APP_ROLE, OWNER_ROLE, prepare_server, role_url
from app.ledger import audit

TEST_DATABASE = "quits_test"
TABLES = ("activity", "expense_versions", "idempotency_keys", "ledger_entries", "settlements", "expenses", "recurring_rules", "balances", "memberships", "groups", "users")
ACCOUNT_TABLES = ("api_tokens", "login_failures")  # emptied by reset; counted by counts(url, ACCOUNT_TABLES)


def test_database_url() -> URL:
    """TEST_DATABASE_URL when set (CI: PostgreSQL 15), else the embedded server's quits_test database.

    DATABASE_URL is deliberately not used: tests truncate tables and must never touch a dev database.
    """
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        return normalise_url(explicit)
    url = embedded_socket_url(PROJECT_ROOT / ".data" / "postgres", TEST_DATABASE)
    asyncio.run(ensure_database(url))
    return url


def prepare_test_database(admin: URL) -> None:
    """As production: the roles, the database owned by quits_owner, migrated by quits_owner. The tests
    keep the superuser URL (admin) for inspection and reset; the app connects as quits_app (app_url)."""
    from app.main import run_migrations

    asyncio.run(prepare_server(admin, database=str(admin.database)))
    run_migrations(owner_url(admin))


def owner_url(admin: URL) -> URL:
    return role_url(admin, OWNER_ROLE)


def app_url(admin: URL) -> URL:
    return role_url(admin, APP_ROLE)


def dsn(url: URL, database: str | None = None) -> str:
    plain = url.set(drivername="postgresql")
    if database is not None:
        plain = plain.set(database=database)
    return plain.render_as_string(hide_password=False)


def run_sql(url: URL, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run one statement on a fresh connection (outside the app) and return its rows."""

    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn(url))
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def reset(url: URL) -> None:
    """Empty every table. Triggers (the ledger's immutability guard) are bypassed for this session only."""

    async def go() -> None:
        conn = await asyncpg.connect(dsn(url))
        try:
            await conn.execute("SET session_replication_role = replica")
            await conn.execute(f"TRUNCATE {', '.join(TABLES + ACCOUNT_TABLES)} CASCADE")
        finally:
            await conn.close()

    asyncio.run(go())


def counts(url: URL, tables: tuple[str, ...] = TABLES) -> dict[str, int]:
    sql = " UNION ALL ".join(f"SELECT '{t}' AS t, count(*) AS n FROM {t}" for t in tables)
    return {r["t"]: r["n"] for r in run_sql(url, sql)}


def assert_ledger_invariants(url: URL) -> None:
    """Every balance row equals the sum of its ledger entries, every posting and every group sums to zero."""
    drift = run_sql(
        url,
        """SELECT m.group_id, m.user_id, m.net_minor, coalesce(l.s, 0) AS ledger FROM member_balances m
           LEFT JOIN (SELECT group_id, user_id, sum(amount_minor) s FROM ledger_entries GROUP BY 1, 2) l
             USING (group_id, user_id)
           WHERE m.net_minor <> coalesce(l.s, 0)""",
    )
    assert drift == [], f"balance rows drifted from the ledger: {drift}"
    unbalanced = run_sql(url, "SELECT posting_id FROM ledger_entries GROUP BY posting_id HAVING sum(amount_minor) <> 0")
    assert unbalanced == [], f"postings that do not sum to zero: {unbalanced}"
    groups = run_sql(url, "SELECT group_id FROM balances GROUP BY group_id HAVING sum(net_minor) <> 0")
    assert groups == [], f"groups whose nets do not sum to zero: {groups}"
    orphans = run_sql(url, ORPHANED_ENTRIES)
    assert orphans == [], f"ledger entries citing a missing group, user, expense or settlement: {orphans}"
    for query in audit.QUERIES:  # every posting is what its expense version or settlement says
        mismatches = run_sql(url, query.text)
        assert mismatches == [], f"ledger entries differ from the records they cite: {mismatches}"


# Ledger entries have no foreign keys (migration d4f6b8c0e005); the single writer must keep them whole.
ORPHANED_ENTRIES = """
SELECT l.seq FROM ledger_entries l
WHERE NOT EXISTS (SELECT 1 FROM groups g WHERE g.id = l.group_id)
   OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = l.user_id)
   OR (l.expense_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM expenses e WHERE e.id = l.expense_id))
   OR (l.settlement_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM settlements s WHERE s.id = l.settlement_id))
"""
