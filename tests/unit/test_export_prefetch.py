"""Snapshot.batches overlaps the database's time with the worker's: the next batch's query is on its way
before the caller gets the current batch to render (the caller renders without awaiting, so a query sent
only at the caller's next await would leave the database idle while the worker renders, and the worker
idle while the database reads)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from app.domain.export import Snapshot

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class FakeConnection:
    """Answers keyset queries over `rows` records after a short wait, as a database would; logs each query
    when it is sent."""

    def __init__(self, rows: int) -> None:
        self.rows = [{"created_at": T0 + dt.timedelta(seconds=i), "id": uuid.UUID(int=i + 1)} for i in range(rows)]
        self.log: list[str] = []

    async def fetch(self, sql: str, group_id: uuid.UUID, at: dt.datetime, after: uuid.UUID, limit: int) -> Any:
        self.log.append(f"sent after {after.int}")
        await asyncio.sleep(0.005)
        return [r for r in self.rows if (r["created_at"], r["id"]) > (at, after)][:limit]


async def _read(rows: int, batch: int) -> tuple[list[str], list[int]]:
    conn = FakeConnection(rows)
    snap = Snapshot(conn, uuid.uuid4(), batch=batch)  # type: ignore[arg-type]
    seen: list[int] = []
    async for got in snap.batches("keyset query"):
        conn.log.append(f"rendering {len(seen)}")  # the caller renders here, without awaiting
        seen += [r["id"].int for r in got]
    return conn.log, seen


def test_the_next_batchs_query_is_sent_before_the_current_batch_is_rendered() -> None:
    log, seen = asyncio.run(_read(rows=25, batch=10))
    assert seen == list(range(1, 26))
    assert log == [
        "sent after 0", "sent after 10", "rendering 0", "sent after 20", "rendering 10", "sent after 25",
        "rendering 20",
    ]  # fmt: skip


def test_a_caller_that_stops_early_leaves_no_query_running() -> None:
    async def first_batch_only() -> list[asyncio.Task[Any]]:
        snap = Snapshot(FakeConnection(50), uuid.uuid4(), batch=10)  # type: ignore[arg-type]
        batches = snap.batches("keyset query")
        assert len(await anext(batches)) == 10
        await batches.aclose()
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    assert asyncio.run(first_batch_only()) == []
