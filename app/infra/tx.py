"""The one place that owns transactions: run, commit, and retry transient conflicts."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import sqlalchemy.exc
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.core.errors import DomainError
from app.infra import metrics
from app.infra.config import Settings
from app.infra.db import local_settings_sql

logger = logging.getLogger("quits.tx")

T = TypeVar("T")

SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"  # statement_timeout
RETRYABLE = frozenset({SERIALIZATION_FAILURE, DEADLOCK_DETECTED, LOCK_NOT_AVAILABLE})
# The database cannot serve us right now: connection exceptions (class 08), insufficient resources
# (class 53: too many connections, out of memory or disk), operator intervention (57P01 shut down,
# 57P02 crashed, 57P03 starting up), a statement cut off by statement_timeout (57014), and a
# read-only server (25006: a standby, e.g. during a failover).
UNAVAILABLE_CLASSES = ("08", "53")
UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", QUERY_CANCELED, "25006"})


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, through SQLAlchemy's and asyncpg's wrappers."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(code, str):
            return code
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """exc and what it wraps (SQLAlchemy's .orig, the adapter's __cause__), outermost first."""
    found: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(found) < 5:
        found.append(seen)
        seen = getattr(seen, "orig", None) or seen.__cause__
    return found


def is_unavailable(exc: BaseException) -> bool:
    """Whether exc means the database could not be reached or used (a 503), rather than a bug (a 500):
    refused or lost connections, timeouts (connect, pool checkout, command), the SQLSTATEs above, and
    any asyncpg client-side interface error (a closed connection or pool) but a rejected argument or
    a bad configuration (bugs: a 500)."""
    code = sqlstate(exc) or ""
    if code.startswith(UNAVAILABLE_CLASSES) or code in UNAVAILABLE_STATES:
        return True
    if getattr(exc, "connection_invalidated", False):
        return True
    chain = _chain(exc)
    if any(isinstance(e, _CLIENT_BUGS) for e in chain):
        return False
    return any(isinstance(e, _UNREACHABLE) for e in chain)


_UNREACHABLE = (OSError, asyncpg.InterfaceError, sqlalchemy.exc.TimeoutError, sqlalchemy.exc.DisconnectionError)
# asyncpg's client-side DataError (an argument it cannot encode) is an InterfaceError too, but a bug.
_CLIENT_BUGS = (asyncpg.exceptions._base.DataError, asyncpg.exceptions.ClientConfigurationError)


def backoff_s(attempt: int, settings: Settings) -> float:
    """Full jitter: uniform in [0, min(max, base * 2^attempt)]."""
    cap_ms = min(settings.retry_max_delay_ms, settings.retry_base_delay_ms * (2**attempt))
    return random.uniform(0, cap_ms) / 1000.0


def unavailable(detail: str) -> DomainError:
    return DomainError("try-again", detail)


async def with_retries(settings: Settings, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run attempt (one whole transaction) until it commits.

    40001, 40P01 and 55P03 are retried with bounded, jittered backoff; when the attempts run out
    the caller gets 503 with Retry-After, and nothing of any attempt was committed.
    """
    for number in range(settings.retry_max_attempts):
        try:
            return await attempt()
        except (DBAPIError, asyncpg.PostgresError) as exc:
            code = sqlstate(exc)
            if code == QUERY_CANCELED:
                raise unavailable("the database did not answer in time") from exc
            if code not in RETRYABLE:
                raise
            if code == LOCK_NOT_AVAILABLE:
                metrics.count_lock_timeout()
            logger.warning("transient conflict %s, attempt %d of %d", code, number + 1, settings.retry_max_attempts)
            if number + 1 < settings.retry_max_attempts:
                metrics.count_retry(code)
                await asyncio.sleep(backoff_s(number, settings))
    metrics.count_retries_exhausted()
    raise unavailable("the write conflicted with concurrent writes; retry later")


async def run_transaction(
    engine: AsyncEngine, settings: Settings, work: Callable[[AsyncConnection], Awaitable[T]]
) -> T:
    """work runs in one transaction: committed on success, rolled back on any error, retried."""

    async def attempt() -> T:
        async with engine.begin() as conn:
            return await work(conn)

    return await with_retries(settings, attempt)


async def run_statement(
    pool: asyncpg.Pool, settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    """work gets the pooled asyncpg connection in autocommit: each statement is its own transaction
    (used for the one-statement writes), or work opens `conn.transaction()` itself. Retried as above.
    Waiting for a free connection is bounded by db_pool_timeout_s (TimeoutError: a 503 at the edge)."""

    pooled_settings = local_settings_sql(settings, write=True) if settings.db_transaction_pooler else None

    async def attempt() -> T:
        async with pool.acquire(timeout=settings.db_pool_timeout_s) as conn:
            if pooled_settings is None:
                return await work(conn)
            # Through a transaction pooler the session's settings are not ours: set them for this transaction.
            async with conn.transaction():
                await conn.execute(pooled_settings)
                return await work(conn)

    return await with_retries(settings, attempt)
