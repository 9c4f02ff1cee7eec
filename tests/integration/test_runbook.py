"""The runbook's commands, run as a new user would (subprocesses from the project root)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import URL

from app.infra.config import PROJECT_ROOT
from tests.dbutil import dsn, run_sql

BIN = Path(sys.executable).parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env["DATABASE_URL"] = ""  # overrides a developer's .env: empty means "embedded"
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def scratch_db(db_url: URL) -> Iterator[URL]:
    name = f"quits_scratch_{uuid.uuid4().hex[:8]}"
    run_sql(db_url.set(database="postgres"), f'CREATE DATABASE "{name}"')
    try:
        yield db_url.set(database=name)
    finally:
        run_sql(db_url.set(database="postgres"), f'DROP DATABASE "{name}" WITH (FORCE)')


def _tables(url: URL) -> set[str]:
    rows = run_sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


def _alembic(*args: str, url: URL, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["alembic", *args], cwd=cwd, env=_env(DATABASE_URL=dsn(url)), capture_output=True, text=True, timeout=120
    )


def _revision(url: URL) -> str | None:
    rows = run_sql(url, "SELECT version_num FROM alembic_version")
    return str(rows[0]["version_num"]) if rows else None


def test_alembic_upgrade_downgrade_upgrade(scratch_db: URL) -> None:
    up = _alembic("upgrade", "head", url=scratch_db)
    assert up.returncode == 0, up.stderr
    assert {"users", "groups", "memberships", "expenses", "settlements", "ledger_entries"} <= _tables(scratch_db)
    head = _revision(scratch_db)
    down = _alembic("downgrade", "-1", url=scratch_db)
    assert down.returncode == 0, down.stderr
    assert _revision(scratch_db) not in (head, None)
    again = _alembic("upgrade", "head", url=scratch_db)
    assert again.returncode == 0, again.stderr
    assert _revision(scratch_db) == head


def test_upgrade_downgrade_base_upgrade_on_empty_database(scratch_db: URL) -> None:
    for args in (("upgrade", "head"), ("downgrade", "base"), ("upgrade", "head")):
        result = _alembic(*args, url=scratch_db)
        assert result.returncode == 0, result.stderr
        if args[0] == "downgrade":
            assert _tables(scratch_db) <= {"alembic_version"}
            functions = run_sql(
                scratch_db, "SELECT proname FROM pg_proc WHERE proname LIKE 'quits%' OR proname LIKE 'ledger_entries%'"
            )
            assert functions == []
    heads = _alembic("current", url=scratch_db)
    assert "(head)" in heads.stdout


def test_alembic_revision_creates_a_date_named_migration(tmp_path: Path, db_url: URL) -> None:
    shutil.copy(PROJECT_ROOT / "alembic.ini", tmp_path / "alembic.ini")
    shutil.copytree(PROJECT_ROOT / "migrations", tmp_path / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    before = set((tmp_path / "migrations" / "versions").glob("*.py"))
    result = subprocess.run(
        ["alembic", "revision", "-m", "add widgets"],
        cwd=tmp_path,
        env=_env(PYTHONPATH=str(PROJECT_ROOT), DATABASE_URL=dsn(db_url)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    (new,) = set((tmp_path / "migrations" / "versions").glob("*.py")) - before
    assert re.fullmatch(r"\d{8}_\d{4}_[0-9a-f]+_add_widgets\.py", new.name), new.name
    text = new.read_text()
    assert "def upgrade() -> None:" in text and "def downgrade() -> None:" in text
    heads = {m.group(1) for f in before for m in [re.search(r'^revision: str = "(\w+)"', f.read_text(), re.M)] if m}
    down = re.search(r"^down_revision: str \| None = '(\w+)'", text, re.M)
    assert down is not None and down.group(1) in heads, text


def test_uvicorn_with_embedded_postgres_serves_health_and_stops_it(tmp_path: Path) -> None:
    """`uvicorn app.main:app --reload` with no DATABASE_URL: embedded server, migrations, health, clean stop."""
    data_dir = tmp_path / "pg"
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN / "uvicorn"), "app.main:app", "--reload", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=_env(EMBEDDED_DATA_DIR=str(data_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        body = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                body = r.json()
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert body == {"status": "ok", "database": "ok"}, body
        assert (data_dir / "PG_VERSION").read_text().strip() == "18"
        assert (data_dir / "postmaster.pid").exists()
        r = httpx.post(f"http://127.0.0.1:{port}/v1/users", json={"name": "N", "email": "n@example.com"})
        assert r.status_code == 201  # migrations were applied on startup
        assert _service_roles(data_dir) == ["quits_app"]  # the service's connections, as the app role
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    deadline = time.monotonic() + 20
    while (data_dir / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (data_dir / "postmaster.pid").exists(), out


def _service_roles(data_dir: Path) -> list[str]:
    """Who the running service is connected as (read without joining the embedded server's handles)."""
    lines = (data_dir / "postmaster.pid").read_text().splitlines()
    url = URL.create("postgresql", username="postgres", database="quits", query={"host": lines[4], "port": lines[3]})
    rows = run_sql(url, "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'quits'")
    return [str(r["usename"]) for r in rows]


def test_balance_slots_migration_keeps_every_net_both_ways(scratch_db: URL) -> None:
    """c3e5a7b9d003 moves memberships.net_minor into slot 0 of balances; downgrading sums the slots back."""
    assert _alembic("upgrade", "b2d4f6a8c002", url=scratch_db).returncode == 0
    a, b, g = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for user, name in ((a, "a"), (b, "b")):
        run_sql(
            scratch_db,
            "INSERT INTO users (id, name, email, token_hash) VALUES ($1, $2, $2, $3)",
            user,
            name,
            uuid.uuid4().bytes * 2,
        )
    run_sql(scratch_db, "INSERT INTO groups (id, name, currency, created_by) VALUES ($1, 'g', 'USD', $2)", g, a)
    for user, net in ((a, 500), (b, -500)):
        run_sql(scratch_db, "INSERT INTO memberships (group_id, user_id, net_minor) VALUES ($1, $2, $3)", g, user, net)

    up = _alembic("upgrade", "head", url=scratch_db)
    assert up.returncode == 0, up.stderr
    slots = run_sql(scratch_db, "SELECT user_id, slot, net_minor FROM balances WHERE net_minor <> 0 ORDER BY slot")
    assert sorted((r["user_id"], r["slot"], r["net_minor"]) for r in slots) == sorted([(a, 0, 500), (b, 0, -500)])
    assert run_sql(scratch_db, "SELECT count(*) AS n FROM balances")[0]["n"] == 16
    run_sql(scratch_db, "UPDATE balances SET net_minor = net_minor + 200 WHERE user_id = $1 AND slot = 3", a)
    run_sql(scratch_db, "UPDATE balances SET net_minor = net_minor - 200 WHERE user_id = $1 AND slot = 0", a)

    down = _alembic("downgrade", "b2d4f6a8c002", url=scratch_db)
    assert down.returncode == 0, down.stderr
    nets = run_sql(scratch_db, "SELECT user_id, net_minor FROM memberships")
    assert {r["user_id"]: r["net_minor"] for r in nets} == {a: 500, b: -500}
    assert "balances" not in _tables(scratch_db)


def _column_types(url: URL) -> dict[str, str]:
    rows = run_sql(
        url,
        "SELECT table_name || '.' || column_name AS col, coalesce(domain_name, data_type) AS type"
        " FROM information_schema.columns WHERE table_schema = 'public' AND (table_name, column_name) IN"
        " (('expenses', 'amount_minor'), ('expenses', 'split_type'), ('expenses', 'version'),"
        " ('settlements', 'amount_minor'), ('ledger_entries', 'kind'), ('balances', 'slot'))",
    )
    return {r["col"]: r["type"] for r in rows}


def test_domains_migration_keeps_rows_and_rules_both_ways(scratch_db: URL) -> None:
    """e5a7c9d1f006 moves single-column CHECK rules into domains; downgrading moves them back."""
    assert _alembic("upgrade", "d4f6b8c0e005", url=scratch_db).returncode == 0
    a, g, e = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    run_sql(scratch_db, "INSERT INTO users (id, name, email, token_hash) VALUES ($1, 'a', 'a', $2)", a, a.bytes * 2)
    run_sql(scratch_db, "INSERT INTO groups (id, name, currency, created_by) VALUES ($1, 'g', 'USD', $2)", g, a)
    run_sql(scratch_db, "INSERT INTO memberships (group_id, user_id) VALUES ($1, $2)", g, a)
    expense = (
        "INSERT INTO expenses (id, group_id, description, amount_minor, currency, paid_by, split_type, shares,"
        " version, created_by, created_at, updated_at) VALUES ($1, $2, 'x', $3, 'USD', $4, 'equal', '[]', 1, $4,"
        " now(), now())"
    )
    run_sql(scratch_db, expense, e, g, 1234, a)
    before = _column_types(scratch_db)
    assert set(before.values()) <= {"bigint", "character varying", "integer", "smallint"}, before

    assert _alembic("upgrade", "head", url=scratch_db).returncode == 0
    assert _column_types(scratch_db) == {
        "expenses.amount_minor": "quits_amount_minor",
        "expenses.split_type": "quits_split_type",
        "expenses.version": "quits_version",
        "settlements.amount_minor": "quits_amount_minor",
        "ledger_entries.kind": "quits_entry_kind",
        "balances.slot": "quits_balance_slot",
    }
    with pytest.raises(asyncpg.CheckViolationError, match="quits_amount_minor"):
        run_sql(scratch_db, expense, uuid.uuid4(), g, 0, a)

    down = _alembic("downgrade", "d4f6b8c0e005", url=scratch_db)
    assert down.returncode == 0, down.stderr
    assert _column_types(scratch_db) == before
    with pytest.raises(asyncpg.CheckViolationError, match="ck_expenses_ck_expenses_amount_range"):
        run_sql(scratch_db, expense, uuid.uuid4(), g, 0, a)
    rows = run_sql(scratch_db, "SELECT id, amount_minor FROM expenses")
    assert [(r["id"], r["amount_minor"]) for r in rows] == [(e, 1234)]
    assert run_sql(scratch_db, "SELECT count(*) AS n FROM pg_type WHERE typname LIKE 'quits\\_%'")[0]["n"] == 0
