"""Groups and their members. Services never commit: the caller owns the transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.api.pagination import keyset_params
from app.api.problems import ProblemError, not_found
from app.infra.ids import new_id


@dataclass(frozen=True, slots=True)
class GroupRecord:
    id: uuid.UUID
    name: str
    currency: str
    created_by: uuid.UUID
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MemberRecord:
    user_id: uuid.UUID
    name: str
    email: str


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
    return GroupRecord(row.id, row.name, row.currency, row.created_by, row.created_at)


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
    return GroupRecord(group_id, name, currency, creator, created_at)


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
    return [GroupRecord(r.id, r.name, r.currency, r.created_by, r.created_at) for r in rows]


async def list_members(conn: AsyncConnection, group_id: uuid.UUID) -> list[MemberRecord]:
    rows = await conn.execute(
        text(
            "SELECT u.id, u.name, u.email FROM memberships m JOIN users u ON u.id = m.user_id"
            " WHERE m.group_id = :g ORDER BY u.id"
        ),
        {"g": group_id},
    )
    return [MemberRecord(r.id, r.name, r.email) for r in rows]


async def find_user_id(conn: AsyncConnection, user_id: uuid.UUID | None, email: str | None) -> uuid.UUID:
    if user_id is not None:
        found = (await conn.execute(text("SELECT id FROM users WHERE id = :id"), {"id": user_id})).scalar()
    else:
        found = (await conn.execute(text("SELECT id FROM users WHERE lower(email) = lower(:e)"), {"e": email})).scalar()
    if found is None:
        raise not_found("user")
    return uuid.UUID(str(found))


async def add_member(conn: AsyncConnection, group_id: uuid.UUID, user_id: uuid.UUID, max_members: int) -> None:
    # The group row lock serialises concurrent adds, so the size check cannot be raced past.
    await conn.execute(text("SELECT 1 FROM groups WHERE id = :g FOR UPDATE"), {"g": group_id})
    size = (await conn.execute(text("SELECT count(*) FROM memberships WHERE group_id = :g"), {"g": group_id})).scalar()
    if size is not None and size >= max_members:
        raise ProblemError(409, "group-full", f"a group has at most {max_members} members")
    inserted = (
        await conn.execute(
            text(
                "INSERT INTO memberships (group_id, user_id) VALUES (:g, :u) ON CONFLICT DO NOTHING RETURNING user_id"
            ),
            {"g": group_id, "u": user_id},
        )
    ).first()
    if inserted is None:
        raise ProblemError(409, "already-member", "the user is already a member of this group")


async def remove_member(conn: AsyncConnection, group_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Delete the membership (and its balance slots) only if its net is zero, checked with all of the
    member's slots locked in slot order, as every other writer locks them."""
    net = (
        await conn.execute(
            text(
                "SELECT sum(net_minor) FROM (SELECT net_minor FROM balances WHERE group_id = :g AND user_id = :u"
                " ORDER BY slot FOR UPDATE) b"
            ),
            {"g": group_id, "u": user_id},
        )
    ).scalar()
    if net is None:
        raise not_found("member")
    if net != 0:
        raise ProblemError(409, "member-has-balance", "a member whose net balance is not zero cannot be removed")
    await conn.execute(
        text("DELETE FROM memberships WHERE group_id = :g AND user_id = :u"), {"g": group_id, "u": user_id}
    )
