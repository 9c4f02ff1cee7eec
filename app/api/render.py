"""Rendering records to JSON bodies (orjson; UUIDs and datetimes in canonical RFC 3339 UTC form)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

import orjson
from starlette.responses import Response

from app.api.pagination import encode_time_cursor
from app.api.problems import PROBLEM_MEDIA_TYPE

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": desc, "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for code, desc in {
        400: "Bad request (bad cursor, bad Idempotency-Key)",
        401: "Missing or invalid bearer token",
        403: "Forbidden",
        404: "Not found (or not visible to the caller)",
        409: "Conflict",
        412: "Precondition failed: If-Match does not match the current version; nothing was written",
        415: "Unsupported media type",
        422: "Invalid payload; nothing was written",
        429: "Too many attempts; retry after Retry-After seconds",
        503: "Database unavailable or contention persisted; retry after Retry-After seconds",
    }.items()
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: PROBLEM_RESPONSES[c] for c in codes}


def created_at_location(path: str) -> dict[int | str, dict[str, Any]]:
    """The 201 response's `Location` header, for the OpenAPI document."""
    header = {"description": f"The new resource's path, `{path}`.", "schema": {"type": "string"}}
    return {201: {"description": "Created", "headers": {"Location": header}}}


def json_bytes(body: Any) -> bytes:
    return orjson.dumps(body)


def respond(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json_bytes(body), status_code=status_code, media_type="application/json", headers=headers)


def raw_json(content: bytes | str, status_code: int, headers: dict[str, str] | None = None) -> Response:
    return Response(content, status_code=status_code, media_type="application/json", headers=headers)


def page_body(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {"items": items, "next_cursor": next_cursor}


class Keyed(Protocol):
    @property
    def id(self) -> UUID: ...
    @property
    def created_at(self) -> datetime: ...


R = TypeVar("R", bound=Keyed)


def time_page(rows: Sequence[R], limit: int, render: Callable[[R], Any], scope: str) -> Response:
    """rows holds up to limit + 1 records, newest first: the extra one only says there is a next page."""
    more = len(rows) > limit
    shown = rows[:limit]
    cursor = encode_time_cursor(scope, shown[-1].created_at, shown[-1].id) if more else None
    return respond(page_body([render(r) for r in shown], cursor))
