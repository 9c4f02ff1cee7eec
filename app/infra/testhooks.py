"""Fault injection for the concurrency tests. Inert unless settings.enable_test_hooks is true.

`X-Test-Fault: 40001:3` makes the first 3 attempts of the request's transaction fail with a real
PostgreSQL error of that SQLSTATE (raised by the server, after the writes, before commit).
`X-Test-Delay-Ms: 500` makes the transaction sleep in the database before it commits.
Every response carries `X-Test-Worker: <pid>` (WorkerHeader).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import asyncpg
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.infra.config import Settings

FAULT_CODES = frozenset({"40001", "40P01", "55P03"})
MAX_FAULTS = 100
MAX_DELAY_MS = 30_000


@dataclass(slots=True)
class Faults:
    sqlstate: str | None = None
    failures_left: int = 0
    delay_ms: int = 0
    attempts: int = field(default=0)

    async def fire(self, conn: asyncpg.Connection) -> None:
        """Runs inside the write's transaction, after its statement."""
        self.attempts += 1
        if self.delay_ms:
            await conn.execute("SELECT pg_sleep($1)", self.delay_ms / 1000)
        if self.sqlstate and self.failures_left > 0:
            self.failures_left -= 1
            # The code is from a fixed allow-list, so formatting it into the statement is safe.
            await conn.execute(
                f"DO $$ BEGIN RAISE EXCEPTION 'injected fault' USING ERRCODE = '{self.sqlstate}'; END $$"
            )


def faults_for(request: Request, settings: Settings) -> Faults | None:
    if not settings.enable_test_hooks:
        return None
    spec = request.headers.get("x-test-fault", "")
    delay = request.headers.get("x-test-delay-ms", "")
    if not spec and not delay:
        return None
    faults = Faults()
    code, _, count = spec.partition(":")
    if code in FAULT_CODES and count.isdigit():
        faults.sqlstate, faults.failures_left = code, min(int(count), MAX_FAULTS)
    if delay.isdigit():
        faults.delay_ms = min(int(delay), MAX_DELAY_MS)
    return faults


class WorkerHeader:
    """Test hooks only: every response says which worker process served it (`X-Test-Worker: <pid>`), so a
    black-box test of a multi-worker server can tell that each worker saw a request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.pid = str(os.getpid()).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-test-worker", self.pid)]}
            await send(message)

        await self.app(scope, receive, tagged)
