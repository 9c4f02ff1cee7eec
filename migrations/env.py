"""Alembic environment: the same URL logic as the app. Migrations run as the schema's owner:
MIGRATION_DATABASE_URL (else DATABASE_URL), or quits_owner on the embedded server."""

import asyncio
import logging.config

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.infra.config import Settings, get_settings
from app.infra.db import Urls, normalise_url, prepare_embedded, resolve_urls, safe_url
from app.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata
MIGRATION_LOCK_ID = 0x71756974  # pg_advisory_lock key: concurrent workers migrate one at a time


def _url() -> tuple[URL, tuple[Urls, Settings] | None]:
    explicit = config.attributes.get("database_url")
    if explicit:
        return normalise_url(explicit), None
    settings = get_settings()
    urls = resolve_urls(settings)
    where = "the embedded server" if urls.embedded else "MIGRATION_DATABASE_URL or DATABASE_URL"
    logging.getLogger("alembic.env").info("database %s (%s)", safe_url(urls.migrations), where)
    return urls.migrations, (urls, settings) if urls.embedded else None


def run_migrations_offline() -> None:
    url, _ = _url()
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_ID})
    try:
        context.configure(connection=connection, target_metadata=target_metadata, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.rollback()  # a failed migration leaves the transaction aborted
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_ID})
        connection.commit()


async def run_migrations_online() -> None:
    url, embedded = _url()
    if embedded is not None:  # the roles and the database exist before quits_owner logs in
        await prepare_embedded(*embedded)
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
