"""Guests: members without an account, added by name, and the invites that let them claim their place.

A guest is a users row with guest = true and no email, token or password. They take part in
expenses and settlements like anyone. An invite code (single use, 7 days) lets the person become a
full user with the same id, so their balances and history stay theirs.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.errors import DomainError, invalid, not_found
from app.core.passwords import weakness
from app.domain import groups
from app.domain.accounts import Services
from app.domain.users import REGISTRATION_TOKEN, UserRecord, insert_token
from app.infra.ids import new_id
from app.infra.tx import run_transaction

INVITE_TTL = timedelta(days=7)
INVITE_PREFIX = "qi_"
MAX_INVITE_LENGTH = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class Invite:
    code: str  # shown once
    expires_at: datetime


def _hash(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


async def add_guest(
    conn: AsyncConnection, *, group_id: uuid.UUID, name: str, actor_id: uuid.UUID, max_members: int
) -> uuid.UUID:
    """A new guest user, made a member of the group (in the caller's transaction)."""
    guest_id = new_id()
    await conn.execute(
        text("INSERT INTO users (id, name, email, guest) VALUES (:id, :name, NULL, true)"),
        {"id": guest_id, "name": name},
    )
    await groups.add_member(conn, group_id=group_id, user_id=guest_id, actor_id=actor_id, max_members=max_members)
    return guest_id


_GUEST_MEMBER = text(
    "SELECT u.guest FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.group_id = :g AND m.user_id = :u"
)


async def create_invite(
    conn: AsyncConnection, *, group_id: uuid.UUID, user_id: uuid.UUID, actor_id: uuid.UUID
) -> Invite:
    """An invite for a guest member of the group: 404 unless a member, 409 unless a guest."""
    guest = (await conn.execute(_GUEST_MEMBER, {"g": group_id, "u": user_id})).scalar()
    if guest is None:
        raise not_found("member")
    if not guest:
        raise DomainError("not-a-guest", "only a guest member can be invited to claim their place")
    code = INVITE_PREFIX + secrets.token_urlsafe(24)
    expires_at = datetime.now(UTC) + INVITE_TTL
    await conn.execute(
        text(
            "INSERT INTO invites (code_hash, group_id, user_id, created_by, expires_at)"
            " VALUES (:h, :g, :u, :by, :expires_at)"
        ),
        {"h": _hash(code), "g": group_id, "u": user_id, "by": actor_id, "expires_at": expires_at},
    )
    return Invite(code=code, expires_at=expires_at)


def _invalid_invite() -> DomainError:
    return DomainError(
        "invalid-invite",
        "the invite code is unknown, used or expired",
        fields=[],
    )


_TAKE_INVITE = text(
    """
    SELECT i.group_id, i.user_id FROM invites i JOIN users u ON u.id = i.user_id
    WHERE i.code_hash = :h AND i.used_at IS NULL AND i.expires_at > now() AND u.guest
    FOR UPDATE OF i, u
    """
)
_CLAIM_USER = text(
    """
    UPDATE users SET email = :email, name = coalesce(:name, name), password_hash = :password_hash, guest = false
    WHERE id = :id AND guest RETURNING id, name, email, created_at
    """
)


async def claim(
    svc: Services, *, code: str, email: str, name: str | None, password: str | None
) -> tuple[UserRecord, str]:
    """The guest becomes a full user with the same id (and a "registration" token); the invite is used."""
    if password is not None and (problem := weakness(password, email=email)) is not None:
        raise invalid(("password",), problem)
    if not code.startswith(INVITE_PREFIX) or len(code) > MAX_INVITE_LENGTH:
        raise _invalid_invite()
    password_hash = await svc.passwords.hash(password) if password is not None else None

    async def work(conn: AsyncConnection) -> tuple[UserRecord, str]:
        taken = (await conn.execute(_TAKE_INVITE, {"h": _hash(code)})).first()
        if taken is None:
            raise _invalid_invite()
        taken_email = await conn.execute(text("SELECT 1 FROM users WHERE lower(email) = lower(:e)"), {"e": email})
        if taken_email.first() is not None:
            raise DomainError("email-taken", "a user with this email already exists")
        params = {"id": taken.user_id, "email": email, "name": name, "password_hash": password_hash}
        try:
            row = (await conn.execute(_CLAIM_USER, params)).one()
        except IntegrityError:  # another claim took the email meanwhile
            raise DomainError("email-taken", "a user with this email already exists") from None
        used = text("UPDATE invites SET used_at = now() WHERE group_id = :g AND code_hash = :h")
        await conn.execute(used, {"g": taken.group_id, "h": _hash(code)})
        await conn.execute(
            text(
                "INSERT INTO activity (group_id, id, type, actor_id, user_id)"
                " VALUES (:g, :id, 'member.claimed', :u, :u)"
            ),
            {"g": taken.group_id, "id": new_id(), "u": taken.user_id},
        )
        _, _, token = await insert_token(conn, user_id=taken.user_id, name=REGISTRATION_TOKEN)
        return UserRecord(id=row.id, name=row.name, email=row.email, created_at=row.created_at), token

    return await run_transaction(svc.engine, svc.settings, work)
