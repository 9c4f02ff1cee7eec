"""Users and API tokens. Tokens are random, shown once, stored as SHA-256 (they carry 256 bits)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.errors import DomainError
from app.core.records import rfc3339
from app.infra.cache import BoundedCache
from app.infra.ids import new_id

TOKEN_PREFIX = "qt_"
MAX_TOKEN_LENGTH = 200
_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRecord:
    id: uuid.UUID
    name: str
    email: str
    created_at: datetime


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def bearer_token_of(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, or None if it is not one."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return token


class TokenCache(BoundedCache[bytes, UserRecord]):
    """Token hash → user. Users and tokens never change, so entries never go stale."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        super().__init__(size)


_INSERT_USER = text(
    """
    INSERT INTO users (id, name, email, token_hash) VALUES (:id, :name, :email, :token_hash)
    ON CONFLICT ((lower(email))) DO NOTHING
    RETURNING created_at
    """
)


async def create_user(conn: AsyncConnection, name: str, email: str) -> tuple[UserRecord, str]:
    token = new_token()
    user_id = new_id()
    params = {"id": user_id, "name": name, "email": email, "token_hash": hash_token(token)}
    created_at = (await conn.execute(_INSERT_USER, params)).scalar_one_or_none()
    if created_at is None:
        raise DomainError("email-taken", "a user with this email already exists")
    return UserRecord(id=user_id, name=name, email=email, created_at=created_at), token


async def user_by_token(conn: AsyncConnection, token: str) -> UserRecord | None:
    row = (
        await conn.execute(
            text("SELECT id, name, email, created_at FROM users WHERE token_hash = :h"), {"h": hash_token(token)}
        )
    ).first()
    return UserRecord(**row._mapping) if row else None


def render(user: UserRecord) -> dict[str, Any]:
    """The user on the wire (schema UserOut): the one place it is rendered."""
    return {"id": str(user.id), "name": user.name, "email": user.email, "created_at": rfc3339(user.created_at)}
