"""Through PgBouncer in transaction mode, each transaction of the service has the settings a direct session
gets at connect (timeouts, and the write pool's generic plans without sequential scans), and no statement
depends on a server connection it may not get again (docs/scaling.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from app.infra.config import Settings
from app.infra.db import make_engine, make_write_pool, resolve_urls
from app.infra.tx import run_statement
from tests import pgbouncer
from tests.dbutil import app_url, dsn

NAMES = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout", "jit", "plan_cache_mode",
         "enable_seqscan")  # fmt: skip
SHOW = "SELECT " + ", ".join(f"current_setting('{n}') AS {n}" for n in NAMES)


@pytest.fixture(scope="module")
def bouncer(db_url: URL) -> Iterator[pgbouncer.Bouncer]:
    if not pgbouncer.available():
        pytest.skip(f"no {pgbouncer.PGBOUNCER} (tests/pooler/test_pgbouncer.py fails in CI without it)")
    with pgbouncer.running(db_url) as running:
        yield running


def _settings(url: URL, *, pooled: bool) -> Settings:
    return Settings(
        database_url=dsn(url), db_transaction_pooler=pooled, statement_timeout_ms=4321, lock_timeout_ms=1234,
        idle_in_transaction_timeout_ms=5678, _env_file=None,  # type: ignore[call-arg]
    )  # fmt: skip


async def _seen(settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a transaction of the engine and a statement of the write pool see, each twice over many
    concurrent connections (so that, through the pooler, they land on server connections used before)."""
    url = resolve_urls(settings).service
    engine, pool = make_engine(url, settings), await make_write_pool(url, settings)

    async def read() -> dict[str, Any]:
        async with engine.begin() as conn:
            return dict((await conn.execute(text(SHOW))).mappings().one())

    async def write() -> dict[str, Any]:
        async def work(conn: asyncpg.Connection) -> dict[str, Any]:
            return dict(await conn.fetchrow(SHOW) or {})

        return await run_statement(pool, settings, work)

    try:
        reads = await asyncio.gather(*(read() for _ in range(30)))
        writes = await asyncio.gather(*(write() for _ in range(30)))
    finally:
        await pool.close()
        await engine.dispose()
    assert all(r == reads[0] for r in reads) and all(w == writes[0] for w in writes)
    return reads[0], writes[0]


def test_transactions_through_pgbouncer_have_the_direct_sessions_settings(
    db_url: URL, bouncer: pgbouncer.Bouncer
) -> None:
    direct = asyncio.run(_seen(_settings(app_url(db_url), pooled=False)))
    pooled = asyncio.run(_seen(_settings(bouncer.url(app_url(db_url)), pooled=True)))
    assert pooled == direct
    read, write = pooled
    assert (read["statement_timeout"], read["lock_timeout"], read["jit"]) == ("4321ms", "1234ms", "off")
    assert (write["plan_cache_mode"], write["enable_seqscan"]) == ("force_generic_plan", "off")
    assert read["enable_seqscan"] == "on"  # the read engine plans as usual


def test_a_transaction_pooler_listens_only_on_a_direct_url(db_url: URL, bouncer: pgbouncer.Bouncer) -> None:
    through = dsn(bouncer.url(app_url(db_url)))
    assert resolve_urls(Settings(database_url=through, _env_file=None)).listen is not None  # type: ignore[call-arg]
    pooled = Settings(database_url=through, db_transaction_pooler=True, _env_file=None)  # type: ignore[call-arg]
    assert resolve_urls(pooled).listen is None
    with_direct = Settings(
        database_url=through, db_transaction_pooler=True, database_direct_url=dsn(app_url(db_url)), _env_file=None
    )  # type: ignore[call-arg]
    listen = resolve_urls(with_direct).listen
    assert listen is not None and listen.port != bouncer.port
