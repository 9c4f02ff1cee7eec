"""A shorter way in for the two hot writes, for requests that need nothing but the happy path.

`POST /v1/groups/{id}/expenses` and `.../settlements` are most of the write traffic. Through FastAPI
each pays for route matching over every route, the dependency solver, a stdlib JSON parse and a
second validation pass. This middleware takes such a request only when all of these hold:

- the path is exactly one of the two, with a canonical UUID, and the method is POST;
- `Content-Type` is exactly `application/json`;
- the bearer token is already in the worker's token cache;
- the body validates against the same Pydantic model the route declares (ExpenseIn, SettlementIn).

It then calls the very endpoint function FastAPI would call (app.api.expenses.post_expense,
app.api.settlements.post_settlement) with the same arguments, and renders any exception with the
app's own exception handlers. Anything else (a missing or unknown token, another content type, a
body that fails validation, ...) goes on to FastAPI unchanged, with the body replayed, so every
error response, and the OpenAPI document, come from one place.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from uuid import UUID

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.expenses import post_expense
from app.api.settlements import post_settlement
from app.domain.schemas import ExpenseIn, SettlementIn
from app.domain.users import UserRecord, bearer_token_of, hash_token

Endpoint = Callable[..., Awaitable[Response]]
_PATH = re.compile(r"/v1/groups/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/(expenses|settlements)")
_ROUTES: dict[str, tuple[type[BaseModel], Endpoint]] = {
    "expenses": (ExpenseIn, post_expense),
    "settlements": (SettlementIn, post_settlement),
}


class HotWrites:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PATH.fullmatch(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        user = _cached_user(scope, headers.get(b"authorization"))
        if headers.get(b"content-type") != b"application/json" or user is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        model, endpoint = _ROUTES[match.group(2)]
        try:
            parsed = model.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replay(body, receive), send)  # FastAPI writes the 422
            return
        request = Request(scope, _replay(body, receive))
        raw_key = headers.get(b"idempotency-key")
        key = raw_key.decode("latin-1") if raw_key is not None else None
        try:
            response = await endpoint(UUID(match.group(1)), parsed, request, user, key)
        except Exception as exc:  # rendered by the app's own handler, as FastAPI would, or re-raised
            response = await _handled(scope, request, exc)
        await response(scope, receive, send)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request headers the fast path looks at; a repeated header sends the request to FastAPI."""
    wanted = (b"authorization", b"content-type", b"idempotency-key")
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in wanted:
            if name in found:
                return {}
            found[name] = value
    return found


def _cached_user(scope: Scope, authorization: bytes | None) -> UserRecord | None:
    """The caller if the token is already cached (as app.api.deps.current_user would find it), else None."""
    token = bearer_token_of(authorization.decode("latin-1")) if authorization else None
    return None if token is None else scope["app"].state.token_cache.get(hash_token(token))


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _handled(scope: Scope, request: Request, exc: Exception) -> Response:
    handlers = scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        if cls is not Exception and cls in handlers:
            response: Response = await handlers[cls](request, exc)
            return response
    raise exc
