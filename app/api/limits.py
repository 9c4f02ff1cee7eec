"""Request body size limit, as a pure ASGI middleware (no per-request overhead beyond a header check).

One limit for every route, and larger ones for the few routes that take files (POST /v1/groups/import):
`routes` maps (method, path) to that route's own limit. A declared Content-Length over the limit is
refused before the app runs. A chunked body is counted as it is read: past the limit, reading raises
BodyTooLarge, an HTTPException, which FastAPI passes on (instead of its generic "error parsing the
body" 400) to the problem handler: a 413 either way.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import BodyRejected, problem_response
from app.core.errors import DomainError


class BodyTooLarge(BodyRejected):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(DomainError("body-too-large", f"request body exceeds {max_bytes} bytes"))


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, routes: Mapping[tuple[str, str], int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.routes = dict(routes or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.routes.get((scope["method"], scope["path"]), self.max_bytes) if self.routes else self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await problem_response(BodyTooLarge(limit).error)(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, limited, send)
        except BodyTooLarge as exc:  # raised outside FastAPI's handlers (the hot path reads bodies itself)
            await problem_response(exc.error)(scope, receive, send)
