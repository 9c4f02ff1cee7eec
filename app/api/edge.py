"""The outermost layer of every HTTP request: its id, HEAD, the last-resort 500, the error log line and
the request metrics.

- `X-Request-ID`: the client's value when it is 1..128 printable ASCII characters, else a generated one
  (a per-process random prefix and a counter: unique, and cheaper than a UUID); echoed on every
  response, whoever rendered it (a route, a problem handler, the body limit, the hot path), carried in
  every problem body and on every log line (app.infra.logs.CURRENT).
- `HEAD` on any GET route: the request is served as a GET and the body dropped, so the headers are
  GET's (Content-Length included).
- An exception nothing else handled becomes a 500 problem here, and is not re-raised: the response is
  complete, so the server keeps the keep-alive connection open.
- One log line per 5xx, naming method, route template and status (ERROR with the traceback for a 500,
  WARNING for a 503), after the response started.
- Metrics (app.infra.metrics), when on: one counter and one histogram observation per request.
"""


from __future__ import annotations

import itertools
import logging
import os
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import internal_error_response
from app.infra.logs import CURRENT, RequestContext
from app.infra.metrics import Recorder

logger = logging.getLogger("quits.http")

HEADER = b"x-request-id"
MAX_REQUEST_ID_LENGTH = 128
_PREFIX = os.urandom(4).hex()
_SEQUENCE = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_SEQUENCE):012x}"


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID when acceptable (1..128 printable ASCII characters), else a new one."""
    for name, value in headers:
        if name == HEADER:
            if 0 < len(value) <= MAX_REQUEST_ID_LENGTH and value.isascii() and value.decode("ascii").isprintable():
                return value.decode("ascii")
            break
    return new_request_id()


class Edge:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        method = scope["method"]
        rid = request_id_of(scope["headers"])
        if method == "HEAD":
            scope = {**scope, "method": "GET"}
            send = _without_body(send)
        state = scope["app"].state
        ctx = RequestContext(rid, method, scope, state.route_table)
        token = CURRENT.set(ctx)
        try:
            send = _with_request_id(send, ctx, (HEADER, rid.encode("ascii")))
            try:
                await self.app(scope, receive, send)
            except Exception as exc:  # the last resort: nothing else rendered it
                ctx.error = exc
                if ctx.status == 0:
                    await internal_error_response()(scope, receive, send)
            if ctx.status >= 500 or ctx.error is not None:
                _log_failure(ctx)
            recorder: Recorder | None = state.metrics  # set at start-up (None: metrics off)
            if recorder is not None:
                recorder.request(method, ctx.route, ctx.status, perf_counter() - start)
        finally:
            CURRENT.reset(token)


def _with_request_id(send: Send, ctx: RequestContext, header: tuple[bytes, bytes]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            ctx.status = message["status"]
            message = {**message, "headers": [*message.get("headers", ()), header]}
        await send(message)

    return sending


def _without_body(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            message = {**message, "body": b""}
        await send(message)

    return sending


def _log_failure(ctx: RequestContext) -> None:
    status, error = ctx.status or 500, ctx.error
    summary = f": {type(error).__name__}: {error}" if error is not None else ""
    if status == 500:
        logger.error("%s %s %d: unhandled error%s", ctx.method, ctx.route, status, summary, exc_info=error)
    else:
        logger.warning("%s %s %d%s", ctx.method, ctx.route, status, summary)
