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
from starlette.middleware.cors import CORSMiddleware

from app.api import (
    balances,
    expenses,
    groups,
    health,
    openapi,
    ops,
    problems,
    recurring,
    sessions,
    settlements,
    tokens,
    transfer,
    users,
)
from app.api.edge import Edge
from app.api.hotpath import HotWrites, hot_routes
from app.api.limits import BodyLimit
from app.api.routing import RouteTable
from app.domain import idempotency
from app.domain.accounts import Services
from app.domain.idempotency import KeysInFlight
from app.domain.recurring_scheduler import Scheduler
from app.domain.revocations import RevocationListener
from app.domain.users import TokenCache
from app.infra import metrics
from app.infra.cache import BoundedCache
from app.infra.config import Settings, get_settings
from app.infra.db import (
    Urls,
    embedded_server_pid,
    make_engine,
    make_write_pool,
    prepare_embedded,
    resolve_urls,
    safe_url,
    stop_embedded,
    warn_if_single_role,
)
from app.infra.gate import GroupGate, Slots
from app.infra.logs import configure_logging
from app.infra.passwords import Passwords
from app.infra.process import tune_malloc
from app.infra.testhooks import WorkerHeader
from app.web import install as install_web
from app.web import transfer_pages

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


async def _database(settings: Settings) -> Urls:
    """The service's and the migrations' URLs (the embedded server started or joined, with its two
    roles, when DATABASE_URL is unset), migrated as the settings say; logged, without passwords."""
    already_running = not settings.database_url and embedded_server_pid(settings.embedded_data_dir) is not None
    urls = await asyncio.to_thread(resolve_urls, settings)
    warn_if_single_role(settings)
    if urls.embedded:
        how = "joined the running" if already_running else "started the"
        logger.info("database %s: %s embedded server in %s", safe_url(urls.service), how, settings.embedded_data_dir)
    else:
        logger.info("database %s (DATABASE_URL; no embedded server started)", safe_url(urls.service))
    await prepare_embedded(urls, settings)
    migrate = settings.migrate_on_startup if settings.migrate_on_startup is not None else urls.embedded
    if migrate:
        logger.info("applying migrations (MIGRATE_ON_STARTUP) as %s", safe_url(urls.migrations))
        await asyncio.to_thread(run_migrations, urls.migrations)
    return urls


def _housekeeping(app: FastAPI) -> list[asyncio.Task[None]]:
    state, settings = app.state, app.state.settings
    tasks = [asyncio.create_task(idempotency.purge_forever(state.engine, settings))]
    if state.metrics is not None:
        publisher = metrics.publish_forever(engine=state.engine, write_pool=state.write_pool, settings=settings)
        tasks.append(asyncio.create_task(publisher))
    return tasks


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    tune_malloc(trim_threshold_mib=settings.malloc_trim_threshold_mib,
                mmap_threshold_mib=settings.malloc_mmap_threshold_mib)  # fmt: skip
    urls = await _database(settings)
    embedded = urls.embedded
    app.state.metrics = metrics.setup(settings)
    app.state.migrations = await asyncio.to_thread(health.read_migrations)
    app.state.engine = make_engine(urls.service, settings)
    app.state.write_pool = await make_write_pool(urls.service, settings)
    app.state.database_url = urls.service
    app.state.accounts = Services(engine=app.state.engine, settings=settings, passwords=app.state.passwords)
    await app.state.passwords.warm()
    await health.log_schema(app.state.engine, app.state.migrations)
    tasks = _housekeeping(app)
    revocations = None
    if urls.listen is not None:  # None: through a transaction pooler with no direct URL (app.infra.db)
        revocations = RevocationListener(
            url=urls.listen, cache=app.state.token_cache, connect_timeout_s=settings.db_connect_timeout_s
        )
        revocations.start()
    app.state.scheduler = Scheduler(
        engine=app.state.engine, pool=app.state.write_pool, settings=settings, gate=app.state.group_gate
    )
    if settings.recurring_scheduler:
        tasks.append(asyncio.create_task(app.state.scheduler.run_forever()))
    # Startup objects (modules, routes, schemas) live for the whole process: keep them out of every
    # future collection, so a full collection walks only request garbage (shorter tail latencies).
    gc.collect()
    gc.freeze()
    # Requests make little cyclic garbage; collect the young generation every 10k allocations, not 700.
    gc.set_threshold(10_000, 20, 50)
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        if revocations is not None:
            await revocations.stop()
        await app.state.write_pool.close()
        await app.state.engine.dispose()
        if embedded:
            await asyncio.to_thread(stop_embedded, settings.embedded_data_dir)


def _operation_id(route: APIRoute) -> str:
    """operationId is the handler's name (post_expense, get_balances, ...): stable and readable."""
    return route.name


CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "If-Match", "X-Request-ID"]
CORS_EXPOSED = ["X-Request-ID", "Retry-After", "Idempotent-Replayed", "Location", "ETag", "WWW-Authenticate"]


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """Outermost first: Edge (request id, HEAD, last-resort 500, metrics), CORS (when origins are
    configured), BodyLimit, HotWrites (the last added runs first)."""
    if settings.hot_path:
        app.add_middleware(HotWrites)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        routes={
            ("POST", transfer.IMPORT_PATH): settings.import_max_body_bytes,
            ("POST", transfer_pages.IMPORT_FORM): transfer_pages.upload_limit(settings),  # the web's import form
        },
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE"],
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
            max_age=600,
        )
    app.add_middleware(Edge)
    if settings.enable_test_hooks:
        app.add_middleware(WorkerHeader)  # outermost: tags every response with the worker's pid


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    app = FastAPI(
        title="quits",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        docs_url=None,  # served offline by app.api.ops
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.token_cache = TokenCache(
        size=settings.token_cache_size,
        ttl_s=settings.token_cache_ttl_ms / 1000,
        listen_ttl_s=settings.token_cache_listen_ttl_s,
    )
    app.state.passwords = Passwords(settings)
    app.state.currency_cache = BoundedCache[UUID, str](100_000)
    app.state.group_gate = GroupGate(settings.group_write_gate, name="group_write")
    app.state.settle_gate = GroupGate(settings.group_settle_gate, name="group_settle")
    app.state.keys_in_flight = KeysInFlight()
    app.state.export_slots = Slots(settings.export_concurrency)
    app.state.import_slots = Slots(settings.import_concurrency)
    app.state.metrics = None  # the recorder, set at start-up when metrics are on (app.infra.metrics)
    problems.install(app, settings.retry_after_s)
    app.include_router(health.router)
    app.include_router(ops.router)
    for module in (users, sessions, tokens, groups, expenses, settlements, balances, recurring, transfer):
        app.include_router(module.router, prefix="/v1")
    ops.install_docs(app)  # before the web app: its /static/docs mount must match before /static
    install_web(app)  # the web app for people at / (app/web)
    app.state.route_table = RouteTable(app)
    app.state.hot_routes = hot_routes(app)  # checked at start-up: raises if a hot route changed shape
    _add_middleware(app, settings)
    openapi.install(app)
    return app


app = create_app()
