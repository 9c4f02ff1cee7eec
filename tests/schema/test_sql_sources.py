"""The database at head holds exactly the functions whose sources are in app/sql, and models.py is the
schema: a drift in either direction fails here."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from app.infra.config import PROJECT_ROOT
from app.models import Base
from tests.dbutil import dsn, run_sql

SQL = PROJECT_ROOT / "app" / "sql"
SCRATCH = "quits_sql_sources"

# Every quits function and trigger function in the public schema.
_DATABASE_FUNCTIONS = """
SELECT p.proname, pg_get_functiondef(p.oid) AS def
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = $1 AND (p.proname LIKE 'quits\\_%' OR p.proname = 'ledger_entries_refuse_change')
ORDER BY p.proname
"""


def _sources(server_version: int) -> dict[str, Path]:
    """app/sql/<name>.sql, or <name>.pg18.sql where the server is 18+ and that variant exists."""
    files: dict[str, Path] = {}
    for path in sorted(SQL.glob("*.sql")):
        name, _, variant = path.stem.partition(".")
        if variant == "" and name not in files:
            files[name] = path
        elif variant == "pg18" and server_version >= 180000:
            files[name] = path
    return files


def _normalise(definition: str, schema: str) -> str:
    return definition.replace(f"{schema}.", "SCHEMA.")


async def _definitions(url: URL) -> tuple[dict[str, str], dict[str, str]]:
    """(what the database at head has, what app/sql creates in a scratch schema), by function name."""
    conn = await asyncpg.connect(dsn(url))
    try:
        version = int(await conn.fetchval("SHOW server_version_num"))
        head = {r["proname"]: _normalise(r["def"], "public") for r in await conn.fetch(_DATABASE_FUNCTIONS, "public")}
        async with conn.transaction():  # rolled back: the scratch schema never outlives the test
            await conn.execute(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE; CREATE SCHEMA {SCRATCH}")
            # Types the functions name (expenses, settlements) resolve to public's tables.
            await conn.execute(f"SET LOCAL search_path = {SCRATCH}, public")
            for name, path in _sources(version).items():
                await conn.execute(path.read_text())
                assert re.search(rf"FUNCTION {name}\(", path.read_text()), f"{path.name} must define {name}"
            rows = await conn.fetch(_DATABASE_FUNCTIONS, SCRATCH)
            files = {r["proname"]: _normalise(r["def"], SCRATCH) for r in rows}
            raise _Rollback(head, files)
    except _Rollback as done:
        return done.head, done.files
    finally:
        await conn.close()


class _Rollback(Exception):
    def __init__(self, head: dict[str, str], files: dict[str, str]) -> None:
        self.head, self.files = head, files


def test_every_function_at_head_is_its_app_sql_source(db_url: URL) -> None:
    head, files = asyncio.run(_definitions(db_url))
    assert sorted(head) == sorted(files), "functions at head and files in app/sql differ"
    for name in head:
        assert head[name] == files[name], f"{name}: the database at head differs from app/sql/{name}.sql"


def test_models_are_the_schema_at_head(db_url: URL) -> None:
    """`alembic revision --autogenerate` would produce an empty migration."""

    async def diff() -> list[object]:
        engine = create_async_engine(db_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={"compare_type": True, "compare_server_default": True}),
                        Base.metadata,
                    )
                )
        finally:
            await engine.dispose()

    assert asyncio.run(diff()) == []


@pytest.mark.parametrize("path", sorted(SQL.glob("*.sql")), ids=lambda p: p.name)
def test_each_source_file_is_one_create_or_replace(path: Path) -> None:
    text = path.read_text()
    assert text.count("CREATE OR REPLACE FUNCTION") == 1 and "importlib" not in text


@pytest.mark.parametrize(
    "path", sorted((PROJECT_ROOT / "migrations" / "versions").glob("*.py")), ids=lambda p: p.name[:28]
)
def test_no_migration_loads_or_patches_another(path: Path) -> None:
    text = path.read_text()
    assert not any(word in text for word in ("importlib", "exec_module", "spec_from_file_location", "migrations.versions"))


def test_the_slot_count_has_one_definition(db_url: URL) -> None:
    """The balance slot domain's rule calls quits_balance_slots() instead of repeating the number."""
    rule = run_sql(
        db_url,
        "SELECT pg_get_constraintdef(c.oid) AS rule FROM pg_constraint c JOIN pg_type t ON t.oid = c.contypid"
        " WHERE t.typname = 'quits_balance_slot'",
    )
    assert [r["rule"] for r in rule] == ["CHECK (((VALUE >= 0) AND (VALUE < quits_balance_slots())))"]
