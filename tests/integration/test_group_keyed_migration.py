"""Migration d1a3c5e7f012 (every key of a group's rows includes group_id) both ways, with rows in every
table whose keys it changes, on a scratch database."""

from __future__ import annotations

import uuid

from sqlalchemy.engine import URL

from tests.dbutil import run_sql
from tests.integration.test_runbook import _alembic, scratch_db  # noqa: F401  (scratch_db: a fixture)

BEFORE, THIS = "c9e1f3a5d010", "d1a3c5e7f012"
KEYS = """
SELECT conrelid::regclass::text AS t, pg_get_constraintdef(oid) AS d FROM pg_constraint
WHERE contype IN ('p', 'u', 'f') AND conrelid::regclass::text IN ('expenses', 'settlements', 'recurring_rules',
      'ledger_entries', 'invites')
UNION ALL
SELECT tablename, indexdef FROM pg_indexes WHERE indexname IN ('uq_expenses_recurring_id_occurrence_date',
      'uq_expenses_group_id_recurring_id_occurrence_date', 'ix_invites_code_hash', 'ix_ledger_entries_group_id_seq')
"""


def _keys(url: URL) -> set[tuple[str, str]]:
    return {(r["t"], r["d"].replace("public.", "")) for r in run_sql(url, KEYS)}


def _rows(url: URL) -> dict[str, int]:
    tables = ("expenses", "settlements", "recurring_rules", "ledger_entries", "invites")
    return {t: run_sql(url, f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in tables}


def _seed(url: URL) -> None:
    a, b, g, rule = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    run_sql(url, "INSERT INTO users (id, name, email) VALUES ($1, 'a', 'a@example.com')", a)
    run_sql(url, "INSERT INTO users (id, name, guest) VALUES ($1, 'b', true)", b)
    run_sql(url, "INSERT INTO groups (id, name, currency, created_by) VALUES ($1, 'g', 'USD', $2)", g, a)
    run_sql(
        url,
        "INSERT INTO recurring_rules (id, group_id, template, every, repeat_interval, start_date, next_index,"
        " next_date, active, version, created_by, created_at, updated_by, updated_at)"
        " VALUES ($1, $2, '{}', 'month', 1, '2030-01-31', 1, '2030-02-28', true, 2, $3, now(), $3, now())",
        rule, g, a,
    )  # fmt: skip
    run_sql(
        url,
        "INSERT INTO expenses (id, group_id, description, amount_minor, currency, group_currency, group_amount_minor,"
        " paid_by, payers, split_type, shares, date, version, created_by, created_at, updated_by, updated_at,"
        " recurring_id, occurrence_date) VALUES ($1, $2, 'x', 100, 'USD', 'USD', 100, $3, '[]', 'equal', '[]',"
        " '2030-01-31', 1, $3, now(), $3, now(), $4, '2030-01-31')",
        uuid.uuid4(), g, a, rule,
    )  # fmt: skip
    run_sql(
        url,
        "INSERT INTO settlements (id, group_id, from_user_id, to_user_id, amount_minor, currency, created_by,"
        " created_at) VALUES ($1, $2, $3, $4, 5, 'USD', $3, now())",
        uuid.uuid4(), g, a, b,
    )  # fmt: skip
    run_sql(
        url,
        "INSERT INTO invites (code_hash, group_id, user_id, created_by, expires_at)"
        " VALUES ($1, $2, $3, $4, now() + interval '1 day')",
        uuid.uuid4().bytes * 2, g, b, a,
    )  # fmt: skip


def test_group_keyed_migration_both_ways_keeps_rows(scratch_db: URL) -> None:  # noqa: F811
    assert _alembic("upgrade", BEFORE, url=scratch_db).returncode == 0
    _seed(scratch_db)
    before_keys, before_rows = _keys(scratch_db), _rows(scratch_db)
    assert ("expenses", "PRIMARY KEY (id)") in before_keys

    up = _alembic("upgrade", THIS, url=scratch_db)
    assert up.returncode == 0, up.stderr
    keys = _keys(scratch_db)
    for table in ("expenses", "settlements", "recurring_rules"):
        assert (table, "PRIMARY KEY (group_id, id)") in keys
    assert {
        ("ledger_entries", "PRIMARY KEY (group_id, seq)"),
        ("ledger_entries", "UNIQUE (group_id, id)"),
        ("invites", "PRIMARY KEY (group_id, code_hash)"),
        ("expenses", "FOREIGN KEY (group_id, recurring_id) REFERENCES recurring_rules(group_id, id)"),
    } <= keys
    assert not any("ix_ledger_entries_group_id_seq" in d or "(recurring_id, occurrence_date)" in d for _, d in keys)
    assert _rows(scratch_db) == before_rows

    down = _alembic("downgrade", BEFORE, url=scratch_db)
    assert down.returncode == 0, down.stderr
    assert _keys(scratch_db) == before_keys and _rows(scratch_db) == before_rows
    assert _alembic("upgrade", "head", url=scratch_db).returncode == 0
