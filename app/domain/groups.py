"""Groups and their members. Services never commit: the caller owns the transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.errors import DomainError, not_found
from app.core.records import rfc3339
from app.domain import activity
from app.infra.config import Settings
from app.infra.db import keyset_params
from app.infra.ids import new_id
from app.ledger import commands
from app.ledger.commands import Command


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupRecord:
    id: uuid.UUID
    name: str
    currency: str
    created_by: uuid.UUID
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberRecord:
    user_id: uuid.UUID
    name: str
    email: str | None  # None for a guest
    guest: bool


_GROUP_FOR_MEMBER = text(
    """
    SELECT g.id, g.name, g.currency, g.created_by, g.created_at
    FROM groups g JOIN memberships m ON m.group_id = g.id AND m.user_id = :user_id
    WHERE g.id = :group_id
    """
)


async def group_for_member(conn: AsyncConnection, group_id: uuid.UUID, user_id: uuid.UUID) -> GroupRecord:
    """The group, if user_id is a current member; otherwise it does not exist for them (404)."""
    row = (await conn.execute(_GROUP_FOR_MEMBER, {"group_id": group_id, "user_id": user_id})).first()
    if row is None:
        raise not_found("group")
    return GroupRecord(**row._mapping)


async def group_currency(conn: AsyncConnection, group_id: uuid.UUID) -> str:
    """A group's currency (it never changes, so callers may cache it); 404 when there is no such group."""
    currency = (await conn.execute(text("SELECT currency FROM groups WHERE id = :g"), {"g": group_id})).scalar()
    if currency is None:
        raise not_found("group")
    return str(currency)


async def is_member(conn: AsyncConnection, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    row = await conn.execute(
        text("SELECT 1 FROM memberships WHERE group_id = :g AND user_id = :u"), {"g": group_id, "u": user_id}
    )
    return row.first() is not None


async def create_group(conn: AsyncConnection, name: str, currency: str, creator: uuid.UUID) -> GroupRecord:
    group_id = new_id()
    created_at = (
        await conn.execute(
            text(
                "INSERT INTO groups (id, name, currency, created_by) VALUES (:id, :name, :currency, :creator)"
                " RETURNING created_at"
            ),
            {"id": group_id, "name": name, "currency": currency, "creator": creator},
        )
    ).scalar_one()
    await conn.execute(
        text("INSERT INTO memberships (group_id, user_id) VALUES (:g, :u)"), {"g": group_id, "u": creator}
    )
    await activity.record_member_added(conn, group_id=group_id, actor_id=creator, user_id=creator)
    return GroupRecord(id=group_id, name=name, currency=currency, created_by=creator, created_at=created_at)


async def list_groups(
    conn: AsyncConnection, user_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[GroupRecord]:
    where = "AND (g.created_at, g.id) < (:after_at, :after_id)" if after else ""
    rows = await conn.execute(
        text(
            f"""
            SELECT g.id, g.name, g.currency, g.created_by, g.created_at
            FROM memberships m JOIN groups g ON g.id = m.group_id
            WHERE m.user_id = :user_id {where}
            ORDER BY g.created_at DESC, g.id DESC
            LIMIT :limit
            """
        ),
        {"user_id": user_id, "limit": limit, **keyset_params(after)},
    )
    return [GroupRecord(**r._mapping) for r in rows]


async def list_members(conn: AsyncConnection, group_id: uuid.UUID) -> list[MemberRecord]:
    rows = await conn.execute(
        text(
            "SELECT u.id AS user_id, u.name, u.email, u.guest FROM memberships m JOIN users u ON u.id = m.user_id"
            " WHERE m.group_id = :g ORDER BY u.id"
        ),
        {"g": group_id},
    )
    return [MemberRecord(**r._mapping) for r in rows]


async def find_user_id(conn: AsyncConnection, user_id: uuid.UUID | None, email: str | None) -> uuid.UUID:
    if user_id is not None:
        found = (await conn.execute(text("SELECT id FROM users WHERE id = :id"), {"id": user_id})).scalar()
    else:
        found = (await conn.execute(text("SELECT id FROM users WHERE lower(email) = lower(:e)"), {"e": email})).scalar()
    if found is None:
        raise not_found("user")
    return uuid.UUID(str(found))


async def add_member(
    conn: AsyncConnection, *, group_id: uuid.UUID, user_id: uuid.UUID, actor_id: uuid.UUID, max_members: int
) -> None:
    # The group row lock serialises concurrent adds, so the size check cannot be raced past.
    await conn.execute(text("SELECT 1 FROM groups WHERE id = :g FOR UPDATE"), {"g": group_id})
    size = (await conn.execute(text("SELECT count(*) FROM memberships WHERE group_id = :g"), {"g": group_id})).scalar()
    if size is not None and size >= max_members:
        raise DomainError("group-full", f"a group has at most {max_members} members")
    inserted = (
        await conn.execute(
            text(
                "INSERT INTO memberships (group_id, user_id) VALUES (:g, :u) ON CONFLICT DO NOTHING RETURNING user_id"
            ),
            {"g": group_id, "u": user_id},
        )
    ).first()
    if inserted is None:
        raise DomainError("already-member", "the user is already a member of this group")
    await activity.record_member_added(conn, group_id=group_id, actor_id=actor_id, user_id=user_id)


def render(group: GroupRecord) -> dict[str, Any]:
    """The group on the wire (schema GroupOut): the one place it is rendered."""
    return {
        "id": str(group.id),
        "name": group.name,
        "currency": group.currency,
        "created_by": str(group.created_by),
        "created_at": rfc3339(group.created_at),
    }


def render_member(member: MemberRecord) -> dict[str, Any]:
    """A member on the wire (schema MemberOut)."""
    return {"user_id": str(member.user_id), "name": member.name, "email": member.email, "guest": member.guest}


async def remove_member(
    pool: asyncpg.Pool, settings: Settings, *, caller: uuid.UUID, group_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    """Remove a member whose net is zero: one ledger command, checked under the member's slot locks."""
    await commands.execute(pool, settings, Command.MEMBER_REMOVE, group_id, {"caller": caller, "user_id": user_id})
