"""Operations endpoints besides health: Prometheus metrics and the API docs, served offline.

The docs pages are FastAPI's Swagger UI and ReDoc pages with every asset (Swagger UI's script and
stylesheet, ReDoc's standalone script, the favicon) served by the app itself under /static/docs, from
the files the `fastapi-offline` package ships: no CDN, no Google Fonts, nothing fetched from elsewhere.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response

from app.api.jsonbody import StrictJsonRoute
from app.core.errors import DomainError
from app.infra.metrics import CONTENT_TYPE

STATIC_DOCS = "/static/docs"
router = APIRouter(tags=["operations"], route_class=StrictJsonRoute)

METRICS_DESCRIPTION = (
    "Prometheus text exposition (format 0.0.4), added up over every worker of the server (prometheus_client "
    "multi-process mode). No authentication: restrict it at the proxy. Metrics: `quits_http_request_duration_seconds` "
    "(by method, route template and status; its `_count` is the number of requests), "
    "`quits_idempotent_replays_total` (by route), `quits_db_retries_total` (by SQLSTATE), "
    "`quits_db_retries_exhausted_total`, `quits_db_lock_timeouts_total`, `quits_gate_waits_total` and "
    "`quits_gate_timeouts_total` (by gate), `quits_db_pool_connections` (by pool and state, live workers). "
    "404 when metrics are off (`METRICS=false`)."
)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"description": "The metrics.", "content": {CONTENT_TYPE: {"schema": {"type": "string"}}}},
        404: {"description": "metrics are off"},  # worded in app.api.openapi_text.OPERATION_ERRORS
    },
    summary="Prometheus metrics, added up over every worker of this server",
    description=METRICS_DESCRIPTION,
)
async def get_metrics(request: Request) -> Response:
    state = request.app.state
    recorder = state.metrics
    if recorder is None:
        raise DomainError("not-found", "metrics are off (METRICS=false)")
    recorder.publish(engine=state.engine, write_pool=state.write_pool, settings=state.settings)
    body = await asyncio.to_thread(recorder.render)  # reads every worker's files: off the event loop
    return Response(body, media_type=CONTENT_TYPE)


def docs_assets() -> Path:
    """The static files of the fastapi-offline package (found without importing it)."""
    spec = importlib.util.find_spec("fastapi_offline")
    assert spec is not None and spec.origin is not None, "fastapi-offline is not installed"
    return Path(spec.origin).parent / "static"


def install_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc (ReDoc), their assets under /static/docs; not in the OpenAPI document."""
    app.mount(STATIC_DOCS, StaticFiles(directory=docs_assets()), name="static-docs")
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{STATIC_DOCS}/favicon.png"

    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{STATIC_DOCS}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_DOCS}/swagger-ui.css",
            swagger_favicon_url=favicon,
            swagger_ui_parameters={"validatorUrl": None},  # Swagger UI would send the document to swagger.io
        )

    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{STATIC_DOCS}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )

    docs = APIRouter(route_class=StrictJsonRoute, include_in_schema=False)
    docs.add_api_route("/docs", swagger_ui, methods=["GET"], response_class=HTMLResponse)
    docs.add_api_route("/redoc", redoc, methods=["GET"], response_class=HTMLResponse)
    app.include_router(docs)
