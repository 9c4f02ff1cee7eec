"""Duplicate keys in a JSON object are a 422, through FastAPI and on the hot path.

JSON parsers (the standard library's, orjson, Pydantic's) silently keep the last of two equal keys: a
body `{"amount": "1.00", "amount": "100.00"}` would be read as whichever the parser keeps, and a
proxy or a log may have read the other. A money API refuses to guess. Every router uses
StrictJsonRoute, whose requests parse JSON with a duplicate check; the hot path (app.api.hotpath)
checks its bodies with duplicate_key and hands any offender to FastAPI, so the 422 is the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from app.api.problems import BodyRejected
from app.core.errors import invalid


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return found


def _loads(body: bytes) -> Any:
    return json.loads(body, object_pairs_hook=_object)


def duplicate_key(body: bytes) -> str | None:
    """The first key that appears twice in one object of body; None when none does (or body is not JSON)."""
    try:
        _loads(body)
    except _DuplicateKey as exc:
        return exc.key
    except ValueError:
        return None
    return None


def _rejected(key: str) -> BodyRejected:
    return BodyRejected(invalid((), f"the JSON body has the key {key!r} twice in one object"))


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = _loads(body)
            except _DuplicateKey as exc:
                raise _rejected(exc.key) from None
        return self._json


class StrictJsonRoute(APIRoute):
    """An APIRoute whose handler reads JSON bodies with StrictJsonRequest."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict
