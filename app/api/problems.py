"""RFC 9457 problem details: the one place a domain error becomes an HTTP status.

Everything below the edge raises app.core.errors.DomainError with a code (the problem slug);
STATUS maps each code to its status, and a few codes carry a header (401: WWW-Authenticate;
429 and 503: Retry-After, from the error's retry_after_s or else the configured default).
A code missing from STATUS is a bug and renders as a 500.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.core.errors import DomainError, FieldError
from app.infra.tx import sqlstate

logger = logging.getLogger("quits.errors")

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


def problem_response(
    error: DomainError, *, status: int | None = None, headers: dict[str, str] | None = None
) -> Response:
    status = status or status_of(error)
    if status == 500 and error.code != "internal-error":
        logger.error("domain error %r has no HTTP status: %s", error.code, error.detail)
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + error.code,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": error.detail,
    }
    if error.fields:
        body["errors"] = [{"loc": _loc(f), "msg": f.msg} for f in error.fields]
    all_headers = {**_headers(status, error.retry_after_s), **(headers or {})}
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=all_headers)


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
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + "validation-error",
        "title": _TITLES[422],
        "status": 422,
        "detail": detail,
        "errors": raw,
    }
    return Response(orjson.dumps(body), status_code=422, media_type=PROBLEM_MEDIA_TYPE)


# FastAPI's 400 for a body it cannot even decode (e.g. invalid UTF-8); malformed JSON is a 422 here.
_UNPARSABLE_BODY = "There was an error parsing the body"


async def _on_http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
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
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(DomainError(code, detail), status=exc.status_code, headers=headers)


def _database_unavailable() -> DomainError:
    return DomainError("database-unavailable", "the database is unavailable; retry later")


async def _on_unreachable(_: Request, exc: Exception) -> Response:
    """Connection refused, connect/pool timeouts: nothing was written, so the client may retry."""
    logger.warning("database unreachable: %r", exc)
    return problem_response(_database_unavailable())


async def _on_database_error(request: Request, exc: Exception) -> Response:
    code = sqlstate(exc) or ""
    invalidated = bool(getattr(exc, "connection_invalidated", False))
    if invalidated or code.startswith("08") or code in ("57014", "57P01", "57P03", "53300"):
        return await _on_unreachable(request, exc)
    return await _on_unhandled(request, exc)


async def _on_unhandled(_: Request, exc: Exception) -> Response:
    logger.exception("unhandled error", exc_info=exc)
    return problem_response(DomainError("internal-error", "an internal error occurred"))


def install(app: FastAPI, retry_after_s: int) -> None:
    global RETRY_AFTER_S
    RETRY_AFTER_S = retry_after_s
    app.add_exception_handler(DomainError, _on_domain)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(OSError, _on_unreachable)  # includes TimeoutError, ConnectionRefusedError
    app.add_exception_handler(sqlalchemy.exc.TimeoutError, _on_unreachable)  # pool exhausted
    app.add_exception_handler(sqlalchemy.exc.DBAPIError, _on_database_error)
    app.add_exception_handler(Exception, _on_unhandled)
