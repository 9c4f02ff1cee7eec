"""A shorter way in for the two hot writes, for requests that need nothing but the happy path.

`POST /v1/groups/{id}/expenses` and `.../settlements` are most of the write traffic. Through FastAPI
each pays for route matching over every route, the dependency solver, a stdlib JSON parse and a
second validation pass. This middleware takes such a request only when all of these hold:

- the path is exactly one of the two, with a canonical UUID, and the method is POST;
- `Content-Type` is exactly `application/json`;
- the bearer token is already in the worker's token cache;
- the body validates against the same Pydantic model the route declares (ExpenseIn, SettlementIn),
  and no JSON object in it has a key twice (app.api.jsonbody).

It then calls the very endpoint function FastAPI would call (app.api.expenses.post_expense,
app.api.settlements.post_settlement) with the same arguments, and renders any exception with the
app's own exception handlers. Anything else (a missing or unknown token, another content type, a
body that fails validation, ...) goes on to FastAPI unchanged, with the body replayed, so every
error response, and the OpenAPI document, come from one place.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.deps import current_user
from app.api.jsonbody import duplicate_key
from app.domain.users import UserRecord, bearer_token_of, hash_token

Endpoint = Callable[..., Awaitable[Response]]
HOT_PATHS = {"expenses": "/v1/groups/{group_id}/expenses", "settlements": "/v1/groups/{group_id}/settlements"}
_PATH = re.compile(r"/v1/groups/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/(expenses|settlements)")


@dataclass(frozen=True, slots=True, kw_only=True)
class HotRoute:
    """What the fast path needs of a route: its body model and endpoint, and the parameter names the
    endpoint takes (each one supplied by the fast path, nothing else)."""

    route: APIRoute
    model: type[BaseModel]
    endpoint: Endpoint
    body: str
    user: str
    request: str
    key: str


def _hot_route(route: APIRoute, path: str) -> HotRoute:
    """The fast path's view of a route, or RuntimeError when the route takes anything the fast path
    does not supply (a new dependency, query or header parameter must not be skipped silently)."""
    d = route.dependant
    calls = [sub.call for sub in d.dependencies]
    problems = []
    if [p.name for p in d.path_params] != ["group_id"]:
        problems.append(f"path parameters {[p.name for p in d.path_params]}")
    if d.query_params or d.cookie_params:
        problems.append("query or cookie parameters")
    if [p.alias for p in d.header_params] != ["Idempotency-Key"]:
        problems.append(f"headers {[p.alias for p in d.header_params]}")
    if len(d.body_params) != 1 or calls != [current_user] or d.request_param_name is None:
        problems.append("a body, the current user and the request, and nothing else")
    if problems or d.dependencies[0].name is None or d.request_param_name is None:
        raise RuntimeError(f"the hot path cannot serve {path}: {'; '.join(problems)}")
    body = d.body_params[0]
    model = body.field_info.annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return HotRoute(
        route=route,
        model=model,
        endpoint=route.endpoint,
        body=body.name,
        user=d.dependencies[0].name,
        request=d.request_param_name,
        key=d.header_params[0].name,
    )


def hot_routes(app: FastAPI) -> dict[str, HotRoute]:
    """The table of the fast path, built from the app's own POST routes (checked: see _hot_route)."""
    found = {
        (ctx.path, method): ctx.original_route
        for ctx in iter_route_contexts(app.router.routes)
        if isinstance(ctx.original_route, APIRoute)
        for method in ctx.original_route.methods or ()
    }
    return {name: _hot_route(found[(path, "POST")], path) for name, path in HOT_PATHS.items()}


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
        route: HotRoute = scope["app"].state.hot_routes[match.group(2)]
        try:
            parsed = route.model.model_validate_json(body)
        except ValidationError:
            parsed = None
        if parsed is None or duplicate_key(body) is not None:
            await self.app(scope, _replay(body, receive), send)  # FastAPI writes the 422
            return
        scope["route"] = route.route  # as FastAPI's router would: the route template of logs and metrics
        request = Request(scope, _replay(body, receive))
        raw_key = headers.get(b"idempotency-key")
        args = {
            "group_id": UUID(match.group(1)),
            route.body: parsed,
            route.request: request,
            route.user: user,
            route.key: raw_key.decode("latin-1") if raw_key is not None else None,
        }
        try:
            response = await route.endpoint(**args)
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
