"""Every worker hears token revocations at once: LISTEN on a dedicated PostgreSQL connection.

A revocation (app.domain.tokens.announce_revoked) sends `pg_notify('quits_token_revoked', <hash>)` in
its transaction, delivered when it commits. While this worker's listening connection is up, its token
cache may keep entries for minutes (a revocation evicts them at once); when the connection is lost,
the cache falls back to its short ttl (at most 1 s) and is emptied, and the listener reconnects with
a bounded, growing delay.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

import asyncpg
from sqlalchemy.engine import URL

from app.domain.tokens import REVOKED_CHANNEL
from app.domain.users import TokenCache
from app.infra.db import plain_url

logger = logging.getLogger("quits.revocations")
RETRY_MIN_S, RETRY_MAX_S = 0.5, 30.0


class RevocationListener:
    def __init__(self, *, url: URL, cache: TokenCache, connect_timeout_s: float) -> None:
        self._dsn = plain_url(url)
        self._cache = cache
        self._timeout_s = connect_timeout_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._cache.revoked(bytes.fromhex(payload))
        except ValueError:
            logger.warning("ignoring a malformed token revocation notice")

    async def _listen_once(self) -> None:
        """Connect, listen, and return when the connection is lost."""
        conn = await asyncpg.connect(self._dsn, timeout=self._timeout_s, server_settings={"application_name": "quits"})
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            await conn.add_listener(REVOKED_CHANNEL, self._heard)
            self._cache.listening(True)
            await lost.wait()
        finally:
            self._cache.listening(False)
            with suppress(Exception):
                await conn.close(timeout=1)

    async def _run(self) -> None:
        delay = RETRY_MIN_S
        while True:
            try:
                await self._listen_once()
                delay = RETRY_MIN_S
                logger.warning("lost the token revocation listener; tokens are cached for at most 1 s until back")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                logger.warning("cannot listen for token revocations (%r); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
