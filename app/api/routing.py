"""What the router knows about a path, built once from the app's routes: the route template a request
matched (for logs and metrics: `/v1/groups/{group_id}`, never the raw path), the methods a path allows
(for 405's `Allow`) and a request path's canonical spelling (for Idempotency-Key fingerprints).

FastAPI puts the matched APIRoute into `scope["route"]`, but that route's own path lacks the prefix
of the router it was included with (`/groups/{group_id}` under `/v1`); this table maps it to the full
template. Plain routes and mounts (the OpenAPI document, the docs pages and their assets) leave no
route in the scope: those requests, and 404s, are matched against the table's patterns.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount, compile_path

from app.infra.logs import UNMATCHED_ROUTE

METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True, slots=True)
class _Entry:
    route: object
    regex: re.Pattern[str]
    template: str
    methods: frozenset[str]


class RouteTable:
    def __init__(self, app: FastAPI) -> None:
        self._entries: list[_Entry] = []
        for ctx in iter_route_contexts(app.router.routes):
            if not ctx.path:
                continue
            mount = isinstance(ctx.original_route, Mount)
            regex, template, _ = compile_path(ctx.path + "/{path:path}" if mount else ctx.path)
            methods = frozenset(getattr(ctx.original_route, "methods", None) or ())
            self._entries.append(_Entry(ctx.original_route, regex, template, methods))
        self._by_route = {id(e.route): e.template for e in self._entries}

    def template(self, scope: MutableMapping[str, Any]) -> str:
        """The template of the route that took (or would take) the request, else "unmatched"."""
        route = scope.get("route")
        if route is not None:
            found = self._by_route.get(id(route))
            if found is not None:
                return found
        path = scope["path"]
        for entry in self._entries:
            if entry.regex.match(path):
                return entry.template
        return UNMATCHED_ROUTE

    def allowed_methods(self, path: str) -> list[str]:
        """Every method some route serves at path (HEAD wherever GET is: the edge answers HEAD with GET's
        headers), in a fixed order. Only 405 responses pay for the walk."""
        found: set[str] = set()
        for entry in self._entries:
            if entry.methods and entry.regex.match(path):
                found.update(entry.methods)
        if "GET" in found:
            found.add("HEAD")
        return [m for m in METHOD_ORDER if m in found] + sorted(found - set(METHOD_ORDER))

    def canonical_path(self, scope: MutableMapping[str, Any]) -> str:
        """The request path with its parameters in canonical form, so `/v1/groups/<UUID IN CAPITALS>` and
        `/v1/groups/<uuid without dashes>` fingerprint as the same request. The path itself when the router
        matched no parameters (the hot path takes canonical UUIDs only)."""
        params = scope.get("path_params")
        route = scope.get("route")
        template = self._by_route.get(id(route)) if route is not None else None
        if not params or template is None:
            return str(scope["path"])
        return template.format(**{name: _canonical_param(value) for name, value in params.items()})


def _canonical_param(value: Any) -> str:
    """A UUID path parameter in its canonical form (lowercase, dashed); anything else as sent."""
    try:
        return str(UUID(str(value)))
    except ValueError:
        return str(value)
