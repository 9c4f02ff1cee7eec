"""Argon2id password hashing (argon2-cffi), off the event loop and bounded in memory.

Each hash or verification costs `password_hash_memory_kib` of memory and tens of milliseconds of CPU,
so it runs in a worker thread, and at most `password_hash_concurrency` of them run at once per worker
(the rest wait). An unknown email is verified against a dummy hash made with the same parameters, so
a wrong email and a wrong password take the same time.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.infra.config import Settings


class Passwords:
    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.password_hash_time_cost,
            memory_cost=settings.password_hash_memory_kib,
            parallelism=settings.password_hash_parallelism,
            type=Type.ID,
        )
        self._slots = asyncio.Semaphore(settings.password_hash_concurrency)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, encoded: str | None, password: str) -> bool:
        """True when password matches encoded; with no hash (unknown email, or no password set) the
        dummy hash is verified instead and the answer is False, in the same time."""
        target = encoded if encoded is not None else await self._dummy_hash()
        async with self._slots:
            ok = await asyncio.to_thread(self._matches, target, password)
        return ok and encoded is not None

    async def warm(self) -> None:
        """Make the dummy hash now (at start-up), so that not even the first unknown email is faster."""
        await self._dummy_hash()

    def needs_rehash(self, encoded: str) -> bool:
        """The hash was made with other parameters than the current settings (rehash on next login)."""
        try:
            return self._hasher.check_needs_rehash(encoded)
        except InvalidHashError:
            return True

    def _matches(self, encoded: str, password: str) -> bool:
        try:
            return self._hasher.verify(encoded, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        return self._dummy
