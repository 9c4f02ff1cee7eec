"""Least privilege: the service's role, quits_app, cannot change the ledger or the schema.

Runs on whichever server the suite uses (PostgreSQL 15 through TEST_DATABASE_URL, the embedded 18
otherwise): the suite prepares the roles as production does and migrates as quits_owner.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy.engine import URL

from tests.api import Api
from tests.dbutil import app_url, dsn, run_sql

INSUFFICIENT_PRIVILEGE = "42501"

REFUSED = [
    "UPDATE ledger_entries SET amount_minor = amount_minor + 1",
    "DELETE FROM ledger_entries",
    "TRUNCATE ledger_entries",
    "ALTER TABLE ledger_entries ADD COLUMN note text",
    "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_immutable",
    "ALTER TABLE ledger_entries DISABLE TRIGGER ALL",
    "DROP TABLE ledger_entries",
    "SET session_replication_role = replica",
    "CREATE TABLE quits_app_scratch (id int)",
    "CREATE TABLE public.quits_app_scratch (id int)",
    "CREATE OR REPLACE FUNCTION ledger_entries_refuse_change() RETURNS trigger LANGUAGE plpgsql"
    " AS $$ BEGIN RETURN NULL; END $$",
    "DELETE FROM users",
    "TRUNCATE balances",
    "UPDATE settlements SET amount_minor = 1",
    # append-only history (migration a7c9e1f3b008): the app may read and append, nothing else
    "UPDATE activity SET type = 'member.added'",
    "DELETE FROM activity",
    "TRUNCATE expense_versions",
    "UPDATE expense_versions SET doc = '{}'",
    "UPDATE settlements SET to_user_id = from_user_id",
    # recurring rules (migration 4fdff58b4738): never deleted, their keys and creator never change, and an
    # expense's occurrence key (the exactly-once guard) is set by its INSERT alone
    "DELETE FROM recurring_rules",
    "TRUNCATE recurring_rules",
    "UPDATE recurring_rules SET group_id = group_id",
    "UPDATE recurring_rules SET created_by = updated_by",
    "UPDATE expenses SET occurrence_date = NULL",
    "UPDATE expenses SET recurring_id = NULL",
]


def _as_app(db_url: URL, sql: str) -> None:
    run_sql(app_url(db_url), sql)


def _ledger(db_url: URL) -> list[tuple[object, ...]]:
    return [tuple(r.values()) for r in run_sql(db_url, "SELECT * FROM ledger_entries ORDER BY seq")]


@pytest.mark.parametrize("sql", REFUSED)
def test_the_app_role_is_refused(api: Api, db_url: URL, sql: str) -> None:
    a, b = api.user(), api.user()
    gid = api.group(a, members=(b,))
    api.expense(a, gid, "10.00", a, [a, b])
    api.settle(b, gid, b, a, "5.00")
    before = _ledger(db_url)
    with pytest.raises(asyncpg.PostgresError) as refused:
        _as_app(db_url, sql)
    assert refused.value.sqlstate == INSUFFICIENT_PRIVILEGE, refused.value
    assert _ledger(db_url) == before


def _ledger_privileges(db_url: URL) -> list[str]:
    rows = run_sql(
        db_url,
        "SELECT p.privilege_type FROM information_schema.table_privileges p"
        " WHERE p.grantee = 'quits_app' AND p.table_name = 'ledger_entries' ORDER BY 1",
    )
    return [r["privilege_type"] for r in rows]


def test_the_app_role_may_read_and_append_to_the_ledger_only(api: Api, db_url: URL) -> None:
    a = api.user()
    gid = api.group(a)
    api.expense(a, gid, "1.00", a, [a])
    assert _ledger_privileges(db_url) == ["INSERT", "SELECT"]
    _as_app(db_url, "GRANT UPDATE, DELETE, TRUNCATE ON ledger_entries TO quits_app")  # a warning, no grant
    assert _ledger_privileges(db_url) == ["INSERT", "SELECT"]

    async def append_and_roll_back() -> int:
        conn = await asyncpg.connect(dsn(app_url(db_url)))
        try:
            async with conn.transaction():
                before: int = await conn.fetchval("SELECT count(*) FROM ledger_entries")
                await conn.execute(
                    "INSERT INTO ledger_entries (id, posting_id, group_id, user_id, amount_minor, kind,"
                    " expense_id, expense_version, chain_slot, chain_hash) SELECT gen_random_uuid(),"
                    " gen_random_uuid(), group_id, user_id, 0, kind, expense_id, expense_version, chain_slot,"
                    " chain_hash FROM ledger_entries LIMIT 1"
                )
                after: int = await conn.fetchval("SELECT count(*) FROM ledger_entries")
                raise _RollBack(after - before)
        except _RollBack as done:
            return done.count
        finally:
            await conn.close()

    assert asyncio.run(append_and_roll_back()) == 1


class _RollBack(Exception):
    def __init__(self, count: int) -> None:
        self.count = count


def test_roles_own_what_they_should(db_url: URL) -> None:
    role = run_sql(
        db_url,
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles"
        " WHERE rolname = 'quits_app'",
    )
    assert [tuple(r.values()) for r in role] == [(False, False, False, False, False)]
    owners = run_sql(
        db_url,
        "SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class"
        " WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v', 'S', 'i')",
    )
    assert [r["owner"] for r in owners] == ["quits_owner"]
    functions = run_sql(
        db_url,
        "SELECT proname, prosecdef, pg_get_userbyid(proowner) AS owner FROM pg_proc"
        " WHERE pronamespace = 'public'::regnamespace",
    )
    assert functions and {(r["prosecdef"], r["owner"]) for r in functions} == {(False, "quits_owner")}


def test_the_service_connects_as_the_app_role(api: Api, db_url: URL) -> None:
    api.user()  # the in-process app has connections open now
    users = run_sql(
        db_url,
        "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'quits'",
    )
    assert [r["usename"] for r in users] == ["quits_app"]
