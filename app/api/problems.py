"""RFC 9457 problem details for every error the service returns."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

logger = logging.getLogger("quits.errors")

PROBLEM_BASE = "https://quits.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class ProblemError(Exception):
    """Raised anywhere below the routers; rendered as problem+json."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        errors: Sequence[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = headers or {}
        self.title = title or _TITLES.get(status, "Error")


def validation_error(loc: Sequence[str | int], msg: str) -> ProblemError:
    return ProblemError(422, "validation-error", msg, errors=[{"loc": list(loc), "msg": msg}])


def not_found(what: str) -> ProblemError:
    return ProblemError(404, "not-found", f"{what} not found")


def problem_response(problem: ProblemError) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + problem.slug,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    return Response(
        orjson.dumps(body), status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=problem.headers
    )


def _loc_msg(err: dict[str, Any]) -> dict[str, Any]:
    return {"loc": [str(p) if not isinstance(p, int) else p for p in err.get("loc", ())], "msg": str(err["msg"])}


async def _on_problem(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(exc)


async def _on_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [_loc_msg(e) for e in exc.errors()]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    loc, msg = first["loc"], str(first["msg"])
    detail = f"{'.'.join(str(p) for p in loc)}: {msg}" if loc else msg
    return problem_response(ProblemError(422, "validation-error", detail, errors=errors))


# FastAPI's 400 for a body it cannot even decode (e.g. invalid UTF-8); malformed JSON is a 422 here.
_UNPARSABLE_BODY = "There was an error parsing the body"


async def _on_http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSABLE_BODY:
        return problem_response(validation_error(["body"], "the body is not valid UTF-8 JSON"))
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "error")
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(ProblemError(exc.status_code, slug, detail, headers=headers))


def _database_unavailable() -> ProblemError:
    return ProblemError(
        503, "database-unavailable", "the database is unavailable; retry later", headers={"Retry-After": "1"}
    )


async def _on_unreachable(_: Request, exc: Exception) -> Response:
    """Connection refused, connect/pool timeouts: nothing was written, so the client may retry."""
    logger.warning("database unreachable: %r", exc)
    return problem_response(_database_unavailable())


async def _on_database_error(request: Request, exc: Exception) -> Response:
    from app.infra.tx import sqlstate

    code = sqlstate(exc) or ""
    invalidated = bool(getattr(exc, "connection_invalidated", False))
    if invalidated or code.startswith("08") or code in ("57014", "57P01", "57P03", "53300"):
        return await _on_unreachable(request, exc)
    return await _on_unhandled(request, exc)


async def _on_unhandled(_: Request, exc: Exception) -> Response:
    logger.exception("unhandled error", exc_info=exc)
    return problem_response(ProblemError(500, "internal-error", "an internal error occurred"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(OSError, _on_unreachable)  # includes TimeoutError, ConnectionRefusedError
    app.add_exception_handler(sqlalchemy.exc.TimeoutError, _on_unreachable)  # pool exhausted
    app.add_exception_handler(sqlalchemy.exc.DBAPIError, _on_database_error)
    app.add_exception_handler(Exception, _on_unhandled)
