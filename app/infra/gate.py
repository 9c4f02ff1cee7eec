"""Per-worker admission for writes to one group.

Writes to one group contend for the same balance rows. When many backends wait on one row, every
commit wakes them all and all but one go back to sleep (a thundering herd that burns the database's
CPU). The gate lets at most `width` writes per group from this worker reach the database at once;
the rest wait here, in the event loop, which costs nothing. Correctness never depends on the gate:
the row locks do that. A write waits at most `wait_s` (the database's lock_timeout) here, then goes
on to the database without the gate, so the gate never adds more than that to a request. width 0
disables it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from app.core.errors import DomainError
from app.infra import metrics


class GroupGate:
    def __init__(self, width: int, *, name: str = "write") -> None:
        assert width >= 0
        self._width = width
        self.name = name  # the gate label of the metrics
        self._gates: dict[UUID, tuple[asyncio.Semaphore, int]] = {}

    @asynccontextmanager
    async def enter(self, group_id: UUID, wait_s: float) -> AsyncIterator[None]:
        if self._width == 0:
            yield
            return
        sem, users = self._gates.get(group_id, (None, 0))
        if sem is None:
            sem = asyncio.Semaphore(self._width)
        self._gates[group_id] = (sem, users + 1)
        held = False
        try:
            if not sem.locked():
                await sem.acquire()  # free: no timer needed (wait_for costs a task per call)
                held = True
            else:
                metrics.count_gate_wait(self.name)
                try:
                    await asyncio.wait_for(sem.acquire(), wait_s)
                    held = True
                except TimeoutError:
                    metrics.count_gate_timeout(self.name)  # waited long enough: the database's locks order it
            yield
        finally:
            if held:
                sem.release()
            sem_now, users_now = self._gates[group_id]
            if users_now == 1:
                del self._gates[group_id]  # no one else holds or waits: the map stays small
            else:
                self._gates[group_id] = (sem_now, users_now - 1)

    def __len__(self) -> int:
        return len(self._gates)


class Slots:
    """At most `width` heavy requests of one kind (exports, imports) at once in this worker. One waits at
    most wait_s for a slot, then gets a 503 `try-again` with Retry-After: nothing was read or written."""

    def __init__(self, width: int) -> None:
        assert width >= 1
        self._sem = asyncio.Semaphore(width)

    async def acquire(self, wait_s: float, what: str) -> None:
        try:
            await asyncio.wait_for(self._sem.acquire(), wait_s)
        except TimeoutError:
            raise DomainError("try-again", f"too many {what} in progress in this worker; retry later") from None

    def release(self) -> None:
        self._sem.release()

    @asynccontextmanager
    async def hold(self, wait_s: float, what: str) -> AsyncIterator[None]:
        await self.acquire(wait_s, what)
        try:
            yield
        finally:
            self.release()
