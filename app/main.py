"""The ASGI app: `uvicorn app.main:app`."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from uuid import UUID

from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.engine import URL

from app.api import (
    balances,
    expenses,
    groups,
    health,
    openapi,
    problems,
    recurring,
    sessions,
    settlements,
    tokens,
    users,
)
from app.api.hotpath import HotWrites, hot_routes
from app.api.limits import BodyLimit
from app.domain import idempotency
from app.domain.accounts import Services
from app.domain.idempotency import KeysInFlight
from app.domain.recurring_scheduler import Scheduler
from app.domain.users import TokenCache
from app.infra.cache import BoundedCache
from app.infra.config import Settings, get_settings
from app.infra.db import (
    make_engine,
    make_write_pool,
    prepare_embedded,
    resolve_urls,
    stop_embedded,
    warn_if_single_role,
)
from app.infra.gate import GroupGate
from app.infra.passwords import Passwords
from app.infra.testhooks import WorkerHeader

logger = logging.getLogger("quits")

DESCRIPTION = """Expense-sharing ledger: groups record who paid for what, each expense is split by a
rule, an immutable ledger derives who owes whom, and settle-up payments are recorded.

Money is a decimal string in the group's currency (never a JSON number). Errors are RFC 9457
problem details. `POST .../expenses` and `POST .../settlements` honour `Idempotency-Key`."""


def run_migrations(url: URL) -> None:
    from alembic import command
    from alembic.config import Config

    from app.infra.config import PROJECT_ROOT

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url.render_as_string(hide_password=False)
    cfg.attributes["configure_logging"] = False
    command.upgrade(cfg, "head")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    urls = await asyncio.to_thread(resolve_urls, settings)
    warn_if_single_role(settings)
    embedded = urls.embedded
    await prepare_embedded(urls, settings)
    migrate = settings.migrate_on_startup if settings.migrate_on_startup is not None else embedded
    if migrate:
        await asyncio.to_thread(run_migrations, urls.migrations)
    app.state.engine = make_engine(urls.service, settings)
    app.state.write_pool = await make_write_pool(urls.service, settings)
    app.state.database_url = urls.service
    app.state.accounts = Services(engine=app.state.engine, settings=settings, passwords=app.state.passwords)
    await app.state.passwords.warm()
    purger = asyncio.create_task(idempotency.purge_forever(app.state.engine, settings))
    app.state.scheduler = Scheduler(
        engine=app.state.engine, pool=app.state.write_pool, settings=settings, gate=app.state.group_gate
    )
    background = [purger]
    if settings.recurring_scheduler:
        background.append(asyncio.create_task(app.state.scheduler.run_forever()))
    # Startup objects (modules, routes, schemas) live for the whole process: keep them out of every
    # future collection, so a full collection walks only request garbage (shorter tail latencies).
    gc.collect()
    gc.freeze()
    # Requests make little cyclic garbage; collect the young generation every 10k allocations, not 700.
    gc.set_threshold(10_000, 20, 50)
    try:
        yield
    finally:
        for task in background:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        await app.state.write_pool.close()
        await app.state.engine.dispose()
        if embedded:
            await asyncio.to_thread(stop_embedded, settings.embedded_data_dir)


def _operation_id(route: APIRoute) -> str:
    """operationId is the handler's name (post_expense, get_balances, ...): stable and readable."""
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="quits",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings or get_settings()
    settings = app.state.settings
    app.state.token_cache = TokenCache(size=settings.token_cache_size, ttl_s=settings.token_cache_ttl_ms / 1000)
    app.state.passwords = Passwords(settings)
    app.state.currency_cache = BoundedCache[UUID, str](100_000)
    app.state.group_gate = GroupGate(app.state.settings.group_write_gate)
    app.state.settle_gate = GroupGate(app.state.settings.group_settle_gate)
    app.state.keys_in_flight = KeysInFlight()
    problems.install(app, app.state.settings.retry_after_s)
    if app.state.settings.hot_path:
        app.add_middleware(HotWrites)  # inside BodyLimit (the last added runs first)
    app.add_middleware(BodyLimit, max_bytes=app.state.settings.max_body_bytes)
    if app.state.settings.enable_test_hooks:
        app.add_middleware(WorkerHeader)  # outermost: tags every response with the worker's pid
    app.include_router(health.router)
    for module in (users, sessions, tokens, groups, expenses, settlements, balances, recurring):
        app.include_router(module.router, prefix="/v1")
    app.state.hot_routes = hot_routes(app)  # checked at start-up: raises if a hot route changed shape
    openapi.install(app)
    return app


app = create_app()
