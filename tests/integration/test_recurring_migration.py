"""Migration 4fdff58b4738 (recurring expenses) both ways, on a scratch database."""

from __future__ import annotations

import uuid

from sqlalchemy.engine import URL

from tests.dbutil import run_sql
from tests.integration.test_runbook import _alembic, scratch_db  # noqa: F401  (scratch_db: a fixture)

BEFORE = "b8d0f2a4c009"


def _create_source(url: URL) -> str:
    return str(run_sql(url, "SELECT prosrc FROM pg_proc WHERE proname = 'quits_expense_create'")[0]["prosrc"])


def test_recurring_migration_keeps_expenses_and_refuses_to_drop_rules(scratch_db: URL) -> None:  # noqa: F811
    assert _alembic("upgrade", BEFORE, url=scratch_db).returncode == 0
    before = _create_source(scratch_db)
    a, g, e = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    run_sql(scratch_db, "INSERT INTO users (id, name, email) VALUES ($1, 'a', 'a@example.com')", a)
    run_sql(scratch_db, "INSERT INTO groups (id, name, currency, created_by) VALUES ($1, 'g', 'USD', $2)", g, a)
    run_sql(
        scratch_db,
        "INSERT INTO expenses (id, group_id, description, amount_minor, currency, group_currency, group_amount_minor,"
        " paid_by, payers, split_type, shares, date, version, created_by, created_at, updated_by, updated_at)"
        " VALUES ($1, $2, 'x', 100, 'USD', 'USD', 100, $3, '[]', 'equal', '[]', '2026-12-01', 1, $3, now(), $3, now())",
        e, g, a,
    )  # fmt: skip

    up = _alembic("upgrade", "4fdff58b4738", url=scratch_db)  # this migration (later ones follow it)
    assert up.returncode == 0, up.stderr
    assert "quits_recurring_advance" in _create_source(scratch_db)
    rows = run_sql(scratch_db, "SELECT id, recurring_id, occurrence_date FROM expenses")
    assert [(r["id"], r["recurring_id"], r["occurrence_date"]) for r in rows] == [(e, None, None)]
    rule = (
        "INSERT INTO recurring_rules (id, group_id, template, every, repeat_interval, start_date, next_index,"
        " next_date, active, version, created_by, created_at, updated_by, updated_at)"
        " VALUES ($1, $2, '{}', 'month', 1, '2030-01-31', 0, '2030-01-31', true, 1, $3, now(), $3, now())"
    )
    r = uuid.uuid4()
    run_sql(scratch_db, rule, r, g, a)

    refused = _alembic("downgrade", "-1", url=scratch_db)
    assert refused.returncode != 0 and "recurring rules exist" in refused.stderr
    run_sql(scratch_db, "DELETE FROM recurring_rules")
    down = _alembic("downgrade", "-1", url=scratch_db)
    assert down.returncode == 0, down.stderr
    assert _create_source(scratch_db) == before
    columns = run_sql(scratch_db, "SELECT column_name FROM information_schema.columns WHERE table_name = 'expenses'")
    assert not {"recurring_id", "occurrence_date"} & {c["column_name"] for c in columns}
    assert run_sql(scratch_db, "SELECT count(*) AS n FROM pg_tables WHERE tablename = 'recurring_rules'")[0]["n"] == 0
    assert _alembic("upgrade", "head", url=scratch_db).returncode == 0
