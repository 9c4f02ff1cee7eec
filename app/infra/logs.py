"""Logs: one handler for the app's and uvicorn's loggers, text lines (default) or one JSON object per
line, and the request in flight on every line logged while it runs.

The request in flight is a RequestContext in a context variable, set by the outermost middleware
(app.api.edge) for the whole request: every record logged meanwhile, by any logger (the app's, the
database drivers', uvicorn's access log), carries its request id and, once known, its method, route
template and status (RequestFilter). Outside a request the request id is "-".
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

UNMATCHED_ROUTE = "unmatched"  # the route label of a request no route matched (a 404)
HANDLER_NAME = "quits"
TEXT_FORMAT = "%(levelprefix)s %(asctime)s %(name)s [%(request_id)s] %(message)s"


class Templates(Protocol):
    def template(self, scope: MutableMapping[str, Any]) -> str:
        """The template of the route that took the request (`/v1/groups/{group_id}`), never the raw path."""
        ...


@dataclass(slots=True)
class RequestContext:
    """The request in flight: its id, method, ASGI scope (the router writes the matched route into it),
    the status once the response started, and the error an exception handler rendered, if any."""

    request_id: str
    method: str
    scope: MutableMapping[str, Any]
    templates: Templates
    status: int = 0
    error: BaseException | None = field(default=None)

    @property
    def route(self) -> str:
        return self.templates.template(self.scope)


CURRENT: ContextVar[RequestContext | None] = ContextVar("quits_request", default=None)


def note_error(exc: BaseException) -> None:
    """Remember the error behind the response being rendered; the edge logs it once the status is known."""
    ctx = CURRENT.get()
    if ctx is not None:
        ctx.error = exc


def current_request_id() -> str | None:
    ctx = CURRENT.get()
    return ctx.request_id if ctx is not None else None


def current_route() -> str:
    ctx = CURRENT.get()
    return ctx.route if ctx is not None else UNMATCHED_ROUTE


class RequestFilter(logging.Filter):
    """Adds request_id (and, inside a request, http_method, route and status) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = CURRENT.get()
        if ctx is None:
            record.request_id = "-"
            return True
        record.request_id = ctx.request_id
        record.http_method = ctx.method
        record.route = ctx.route
        record.status = ctx.status or None
        return True


def _utc(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """`ERROR:    2026-12-03T08:00:00.000Z quits.http [<request id>] message` (uvicorn's level prefix)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.levelprefix = f"{record.levelname}:".ljust(9)
        if not hasattr(record, "request_id"):
            record.request_id = "-"
        return super().formatMessage(record)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and inside a request method,
    route and status; exception holds the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _utc(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for attr, key in (("http_method", "method"), ("route", "route"), ("status", "status")):
            value = getattr(record, attr, None)
            if value is not None:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(doc, default=str).decode()


class StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is when a record is emitted (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def make_handler(log_format: str) -> logging.Handler:
    handler = StderrHandler()
    handler.set_name(HANDLER_NAME)
    handler.addFilter(RequestFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return handler


def configure_logging(*, log_format: str, level: str) -> None:
    """Install the handler on the root logger (replacing the one an earlier call installed), and on
    uvicorn's loggers when uvicorn configured them (so its lines share the format and request id)."""
    handler = make_handler(log_format)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    logging.getLogger("quits").setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        if uvicorn_logger.handlers:
            uvicorn_logger.handlers = [handler]
