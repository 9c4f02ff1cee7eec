"""Liveness (`GET /health`, as in v1), readiness (`GET /health/ready`: both pools and the schema's
migration revision) and what the service logs about its schema at start-up."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg
from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import JSONResponse

from app.api import problems
from app.api.deps import EngineDep, SettingsDep
from app.api.jsonbody import StrictJsonRoute
from app.domain.schemas import Health, Readiness
from app.infra.config import PROJECT_ROOT
from app.infra.logs import note_error

logger = logging.getLogger("quits.health")
router = APIRouter(tags=["health"], route_class=StrictJsonRoute)


@dataclass(frozen=True, slots=True)
class Migrations:
    """What the code's migration scripts say, read once at start-up: the head and every revision."""

    head: str
    known: frozenset[str]

    def state(self, revision: str | None) -> str:
        """ok: at head; pending: behind (an older revision of this code, or none); unknown: a revision
        this code does not have (the database was migrated by newer code)."""
        if revision == self.head:
            return "ok"
        return "pending" if revision is None or revision in self.known else "unknown"


def read_migrations() -> Migrations:
    script = ScriptDirectory.from_config(Config(str(PROJECT_ROOT / "alembic.ini")))
    head = script.get_current_head()
    assert head is not None, "the migrations have no head"
    return Migrations(head=head, known=frozenset(r.revision for r in script.walk_revisions()))


async def schema_revision(engine: AsyncEngine) -> str | None:
    """The revision alembic recorded in the database; None when it has none (never migrated)."""
    async with engine.connect() as conn:
        exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
        if not exists:
            return None
        revision = await conn.scalar(text("SELECT version_num FROM alembic_version LIMIT 1"))
        return None if revision is None else str(revision)


async def _write_pool_ok(pool: asyncpg.Pool, timeout_s: float) -> None:
    async with pool.acquire(timeout=timeout_s) as conn:
        await conn.fetchval("SELECT 1")


async def _database_ok(engine: AsyncEngine, timeout_s: float) -> bool:
    async def ping() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(ping(), timeout_s)
    except Exception:  # any failure to reach the database is "unavailable", never a 500
        return False
    return True


_DEGRADED = {"status": "degraded", "database": "unavailable"}


@router.get(
    "/health",
    response_model=Health,
    responses={
        503: {
            "model": Health,
            "description": (
                'The database cannot be reached (within 2 s): `{"status": "degraded", "database": "unavailable"}`, '
                "with `Retry-After`."
            ),
        }
    },
    summary="Liveness and database reachability",
    description=(
        'Always public. 200 `{"status": "ok", "database": "ok"}` when `SELECT 1` succeeds within 2 seconds '
        "(`HEALTH_TIMEOUT_S`); otherwise 503 `{\"status\": \"degraded\", \"database\": \"unavailable\"}` (never a "
        "500). For load balancers, `GET /health/ready` also checks the write pool and the schema."
    ),
)
async def health(engine: EngineDep, settings: SettingsDep) -> JSONResponse:
    if await _database_ok(engine, settings.health_timeout_s):
        return JSONResponse({"status": "ok", "database": "ok"})
    return _not_ready(_DEGRADED)


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": (
                "Not ready, with `Retry-After`: a pool or the database did not answer within 2 s (`\"database\": "
                '"unavailable"`, `"migrations": "unknown"`), or the schema is behind this code (`"migrations": '
                '"pending"`) or at a revision it does not know (`"unknown"`), with `"revision"` and `"head"`.'
            ),
        }
    },
    summary="Readiness, for load balancers: both connection pools and the schema's migration",
    description=(
        'Always public. 200 `{"status": "ok", "database": "ok", "migrations": "ok"}` only when both connection pools '
        "(the engine of reads and multi-statement writes, and the pool of the one-statement writes) answer within "
        "2 seconds (`HEALTH_TIMEOUT_S`) and the schema is at the head of this code's migrations; otherwise 503 in the "
        "same shape (never a 500)."
    ),
)
async def health_ready(request: Request, settings: SettingsDep) -> JSONResponse:
    """200 `{"status": "ok", "database": "ok", "migrations": "ok"}` when both pools answer and the schema is
    at the head; else 503 (with Retry-After) saying which check failed, in the same shape."""
    state = request.app.state
    migrations: Migrations = state.migrations

    async def check() -> str | None:
        await _write_pool_ok(state.write_pool, settings.health_timeout_s)
        return await schema_revision(state.engine)

    try:
        revision = await asyncio.wait_for(check(), settings.health_timeout_s)
    except Exception as exc:  # unreachable, timed out, or any database error: not ready
        note_error(exc)
        return _not_ready({**_DEGRADED, "migrations": "unknown", "head": migrations.head})
    found = migrations.state(revision)
    if found == "ok":
        return JSONResponse({"status": "ok", "database": "ok", "migrations": "ok"})
    return _not_ready({"status": "degraded", "database": "ok", "migrations": found, "revision": revision,
                       "head": migrations.head})  # fmt: skip


def _not_ready(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(problems.RETRY_AFTER_S)})


async def log_schema(engine: AsyncEngine, migrations: Migrations) -> None:
    """At start-up: the schema's revision, and a warning when it is not the code's head."""
    try:
        revision = await schema_revision(engine)
    except Exception as exc:  # the service starts without its database; /health/ready says so
        logger.warning("schema revision unknown: the database is unavailable (%s: %s)", type(exc).__name__, exc)
        return
    found = migrations.state(revision)
    if found == "ok":
        logger.info("schema at revision %s (the head of this code's migrations)", revision)
        return
    logger.warning(
        "schema at revision %s but this code's migrations end at %s (%s): run `alembic upgrade head`; "
        "GET /health/ready answers 503 until then",
        revision,
        migrations.head,
        "behind" if found == "pending" else "a revision this code does not know",
    )
