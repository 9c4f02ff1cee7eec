"""GET /health/ready tells the truth: both pools, and the schema at the head of the code's migrations
(read from the scripts directory at start-up); the service warns at start-up when the schema is behind.
GET /health keeps its v1 shape."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from app.api.health import read_migrations
from app.infra.config import PROJECT_ROOT, Settings
from app.main import create_app
from tests.dbutil import run_sql

HEAD = read_migrations().head


def _settings(url: URL) -> Settings:
    return Settings(
        database_url=url.render_as_string(hide_password=False), migrate_on_startup=False,
        _env_file=None,  # type: ignore[call-arg]
    )  # fmt: skip


def _alembic(url: URL, *args: str) -> None:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url.render_as_string(hide_password=False)
    cfg.attributes["configure_logging"] = False
    getattr(command, args[0])(cfg, *args[1:])


@pytest.fixture
def scratch(db_url: URL) -> Iterator[URL]:
    name = f"quits_ready_{uuid.uuid4().hex[:8]}"
    run_sql(db_url.set(database="postgres"), f'CREATE DATABASE "{name}"')
    try:
        yield db_url.set(database=name)
    finally:
        run_sql(db_url.set(database="postgres"), f'DROP DATABASE "{name}" WITH (FORCE)')


def test_ready_when_both_pools_answer_and_the_schema_is_at_head(client: TestClient) -> None:
    r = client.get("/health/ready")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok", "migrations": "ok"}
    assert client.get("/health").json() == {"status": "ok", "database": "ok"}  # v1, unchanged


def test_the_head_comes_from_the_scripts_directory(client: TestClient) -> None:
    assert client.app.state.migrations.head == HEAD  # type: ignore[attr-defined]
    names = [p.name for p in (PROJECT_ROOT / "migrations" / "versions").glob("*.py")]
    assert any(f"_{HEAD}_" in n for n in names), names


def test_behind_is_pending_with_both_revisions_and_a_startup_warning(
    scratch: URL, caplog: pytest.LogCaptureFixture
) -> None:
    _alembic(scratch, "upgrade", "head")
    _alembic(scratch, "downgrade", "-1")
    previous = run_sql(scratch, "SELECT version_num FROM alembic_version")[0]["version_num"]
    with caplog.at_level(logging.INFO, logger="quits"), TestClient(create_app(_settings(scratch))) as c:
        r = c.get("/health/ready")
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert r.json() == {"status": "degraded", "database": "ok", "migrations": "pending",
                            "revision": previous, "head": HEAD}  # fmt: skip
        assert c.get("/health").status_code == 200  # liveness does not care
        _alembic(scratch, "upgrade", "head")
        assert c.get("/health/ready").json()["migrations"] == "ok"  # checked on every call, not cached
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "quits.health"]
    assert len(warnings) == 1 and previous in warnings[0] and HEAD in warnings[0], warnings
    assert "alembic upgrade head" in warnings[0]


def test_never_migrated_and_unknown_revisions(scratch: URL) -> None:
    with TestClient(create_app(_settings(scratch))) as c:
        body = c.get("/health/ready").json()
        assert body == {"status": "degraded", "database": "ok", "migrations": "pending", "revision": None, "head": HEAD}
        _alembic(scratch, "upgrade", "head")
        run_sql(scratch, "UPDATE alembic_version SET version_num = 'ffffffffffff'")  # migrated by newer code
        r = c.get("/health/ready")
        assert r.status_code == 503
        assert r.json()["migrations"] == "unknown" and r.json()["revision"] == "ffffffffffff"


def test_unreachable_database_is_not_ready() -> None:
    settings = _settings(URL.create("postgresql+asyncpg", username="postgres", host="127.0.0.1", port=1, database="x"))
    with TestClient(create_app(settings.model_copy(update={"db_connect_timeout_s": 1.0}))) as c:
        r = c.get("/health/ready")
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert r.json() == {"status": "degraded", "database": "unavailable", "migrations": "unknown", "head": HEAD}
        assert c.get("/health").status_code == 503


def test_the_write_pool_is_checked_too(client: TestClient, settings: Settings) -> None:
    state = client.app.state  # type: ignore[attr-defined]
    real = state.write_pool

    async def closed_port_pool() -> asyncpg.Pool:
        return await asyncpg.create_pool("postgresql://postgres@127.0.0.1:1/x", min_size=0, timeout=1)

    state.write_pool = client.portal.call(closed_port_pool)  # type: ignore[union-attr]
    try:
        r = client.get("/health/ready")
        assert r.status_code == 503 and r.json()["database"] == "unavailable"
        assert client.get("/health").status_code == 200  # the engine alone is fine
    finally:
        client.portal.call(state.write_pool.close)  # type: ignore[union-attr]
        state.write_pool = real
    assert client.get("/health/ready").status_code == 200
