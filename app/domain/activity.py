"""A group's activity feed: who did what and when. Append-only (a trigger refuses changes).

The write functions in app/sql record what they do (expense.*, settlement.*, member.removed) in
the same statement; the services record the rest (member.added) in their own transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.records import rfc3339
from app.infra.db import keyset_params
from app.infra.ids import new_id

TYPES = (
    "expense.created", "expense.updated", "expense.voided", "settlement.created", "settlement.voided",
    "member.added", "member.removed", "member.claimed", "recurring.created", "recurring.updated", "recurring.stopped",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityRecord:
    id: uuid.UUID
    group_id: uuid.UUID
    type: str
    actor_id: uuid.UUID
    created_at: datetime
    expense_id: uuid.UUID | None
    settlement_id: uuid.UUID | None
    user_id: uuid.UUID | None
    detail: dict[str, Any] | None


def render(a: ActivityRecord) -> dict[str, Any]:
    """An activity item on the wire (schema ActivityOut)."""
    return {
        "id": str(a.id),
        "type": a.type,
        "actor_id": str(a.actor_id),
        "created_at": rfc3339(a.created_at),
        "expense_id": str(a.expense_id) if a.expense_id else None,
        "settlement_id": str(a.settlement_id) if a.settlement_id else None,
        "user_id": str(a.user_id) if a.user_id else None,
        "detail": a.detail,
    }


async def record_member_added(conn: AsyncConnection, *, group_id: uuid.UUID, actor_id: uuid.UUID,
                              user_id: uuid.UUID) -> None:  # fmt: skip
    await conn.execute(
        text(
            "INSERT INTO activity (group_id, id, type, actor_id, user_id)"
            " VALUES (:g, :id, 'member.added', :actor, :user)"
        ),
        {"g": group_id, "id": new_id(), "actor": actor_id, "user": user_id},
    )


_COLUMNS = "id, group_id, type, actor_id, created_at, expense_id, settlement_id, user_id, detail"


async def list_page(
    conn: AsyncConnection, group_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[ActivityRecord]:
    where = "AND (created_at, id) < (:after_at, :after_id)" if after else ""
    rows = await conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM activity WHERE group_id = :g {where}"
            " ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        {"g": group_id, "limit": limit, **keyset_params(after)},
    )
    return [ActivityRecord(**r._mapping) for r in rows]
