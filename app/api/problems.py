"""RFC 9457 problem details: the one place a domain error becomes an HTTP status.

Everything below the edge raises app.core.errors.DomainError with a code (the problem slug);
STATUS maps each code to its status, and a few codes carry a header (401: WWW-Authenticate;
429 and 503: Retry-After, from the error's retry_after_s or else the configured default).
A code missing from STATUS is a bug and renders as a 500.

Every problem body carries the request's `request_id`. Database failures (app.infra.tx.is_unavailable)
are 503 `database-unavailable`; any other unexpected exception is a 500 whose body says the outcome is
unknown. Handlers do not log: they hand the exception to the edge (app.api.edge), which logs it once,
with the request's method, route template and status.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.core.errors import DomainError, FieldError
from app.infra.logs import current_request_id, note_error
from app.infra.tx import is_unavailable

PROBLEM_BASE = "https://quits.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

STATUS: dict[str, int] = {
    "invalid-cursor": 400,
    "invalid-header": 400,
    "invalid-idempotency-key": 400,
    "unauthorized": 401,
    "invalid-credentials": 401,
    "invalid-current-password": 403,
    "not-found": 404,
    "not-a-guest": 409,
    "method-not-allowed": 405,
    "already-member": 409,
    "email-taken": 409,
    "expense-not-editable": 409,
    "group-full": 409,
    "idempotency-key-in-use": 409,
    "member-has-balance": 409,
    "password-changed": 409,
    "too-many-tokens": 409,
    "precondition-failed": 412,
    "recurring-stopped": 409,
    "settlement-not-voidable": 409,
    "body-too-large": 413,
    "unsupported-media-type": 415,
    "idempotency-key-reused": 422,
    "invalid-invite": 422,
    "settlement-exceeds-balance": 422,
    "balance-limit-exceeded": 422,
    "validation-error": 422,
    "too-many-attempts": 429,
    "internal-error": 500,
    "database-unavailable": 503,
    "try-again": 503,
}
RETRY_AFTER_S = 1  # overridden from settings.retry_after_s at start-up (install)

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def status_of(error: DomainError) -> int:
    return STATUS.get(error.code, 500)


def _headers(status: int, retry_after_s: int | None) -> dict[str, str]:
    if status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if status in (429, 503):
        return {"Retry-After": str(retry_after_s or RETRY_AFTER_S)}
    return {}


def _loc(field: FieldError) -> list[str | int]:
    return [field.where, *field.path]


INTERNAL_ERROR_DETAIL = (
    "an internal error occurred; the outcome of the request is unknown. Retrying it with the same "
    "Idempotency-Key is safe: a write is applied at most once"
)
DATABASE_UNAVAILABLE_DETAIL = (
    "the database is unavailable; retry after Retry-After seconds. A write that was in flight was applied "
    "completely or not at all: retrying it with the same Idempotency-Key is safe"
)


class BodyRejected(StarletteHTTPException):
    """Raised while the request body is read (too large, duplicate JSON keys): an HTTPException, so
    FastAPI passes it on unchanged instead of turning it into its generic 400."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(status_code=status_of(error), detail=error.detail)
        self.error = error


def problem_body(code: str, status: int, detail: str) -> dict[str, Any]:
    return {
        "type": PROBLEM_BASE + code,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "request_id": current_request_id(),
    }


def problem_response(
    error: DomainError, *, status: int | None = None, headers: dict[str, str] | None = None
) -> Response:
    status = status or status_of(error)
    if status == 500 and error.code != "internal-error":
        note_error(error)  # a code without a status is a bug: the edge logs it
    body = problem_body(error.code, status, error.detail)
    if error.fields:
        body["errors"] = [{"loc": _loc(f), "msg": f.msg} for f in error.fields]
    all_headers = {**_headers(status, error.retry_after_s), **(headers or {})}
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=all_headers)


def internal_error_response() -> Response:
    return problem_response(DomainError("internal-error", INTERNAL_ERROR_DETAIL))


async def _on_domain(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return problem_response(exc)


def _field(err: dict[str, Any]) -> FieldError:
    loc = tuple(str(p) if not isinstance(p, int) else p for p in err.get("loc", ()))
    return FieldError(loc[1:] if loc[:1] == ("body",) else loc, str(err["msg"]))


async def _on_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    raw = [
        {"loc": [str(p) if not isinstance(p, int) else p for p in e.get("loc", ())], "msg": str(e["msg"])}
        for e in exc.errors()
    ]
    first = raw[0] if raw else {"loc": [], "msg": "invalid request"}
    loc, msg = first["loc"], str(first["msg"])
    detail = f"{'.'.join(str(p) for p in loc)}: {msg}" if loc else msg
    body = {**problem_body("validation-error", 422, detail), "errors": raw}
    return Response(orjson.dumps(body), status_code=422, media_type=PROBLEM_MEDIA_TYPE)


# FastAPI's 400 for a body it cannot even decode (e.g. invalid UTF-8); malformed JSON is a 422 here.
_UNPARSABLE_BODY = "There was an error parsing the body"


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, BodyRejected):
        return problem_response(exc.error)
    if exc.status_code == 400 and exc.detail == _UNPARSABLE_BODY:
        return problem_response(
            DomainError(
                "validation-error",
                "the body is not valid UTF-8 JSON",
                fields=[FieldError((), "the body is not valid UTF-8 JSON")],
            )
        )
    code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "error")
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:  # every method the path has, not only those of the first route matched
        headers["Allow"] = ", ".join(request.app.state.route_table.allowed_methods(request.scope["path"]))
    return problem_response(DomainError(code, detail), status=exc.status_code, headers=headers or None)


async def _on_database_error(_: Request, exc: Exception) -> Response:
    """Unreachable, starting up, too many connections, connection lost, pool or statement timeout: 503.
    Any other database error is a bug: 500."""
    note_error(exc)
    if is_unavailable(exc):
        return problem_response(DomainError("database-unavailable", DATABASE_UNAVAILABLE_DETAIL))
    return internal_error_response()


DATABASE_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, and TimeoutError (connect, pool acquire, command timeouts)
    sqlalchemy.exc.TimeoutError,  # the engine's pool is exhausted
    sqlalchemy.exc.DBAPIError,
    asyncpg.PostgresError,  # the write pool (app.ledger) raises asyncpg's own errors
    asyncpg.InterfaceError,  # a closed connection or pool
)


def install(app: FastAPI, retry_after_s: int) -> None:
    """The handlers FastAPI's ExceptionMiddleware runs (and the hot path looks up). Anything else that
    escapes is rendered and logged by the edge (app.api.edge) as a 500, with the connection kept open."""
    global RETRY_AFTER_S
    RETRY_AFTER_S = retry_after_s
    app.add_exception_handler(DomainError, _on_domain)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    for cls in DATABASE_ERRORS:
        app.add_exception_handler(cls, _on_database_error)
