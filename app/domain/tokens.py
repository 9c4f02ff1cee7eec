"""A user's named API tokens: list the live ones, create one (bounded per user), revoke one.

Creating a token locks the user's row (FOR NO KEY UPDATE: it does not block the foreign-key checks of
other writes) so that concurrent creations cannot pass the per-user limit together. Revoking sets
revoked_at; the row stays, so a revoked token can never come back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.errors import DomainError, not_found
from app.core.records import rfc3339
from app.domain.users import insert_token

SESSION_TOKEN = "session"


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRecord:
    id: uuid.UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None


_LIVE = text(
    """
    SELECT id, name, created_at, last_used_at FROM api_tokens
    WHERE user_id = :user_id AND revoked_at IS NULL
    ORDER BY created_at DESC, id DESC
    """
)
_LOCK_USER = text("SELECT 1 FROM users WHERE id = :user_id FOR NO KEY UPDATE")
_COUNT_LIVE = text("SELECT count(*) FROM api_tokens WHERE user_id = :user_id AND revoked_at IS NULL")
_EVICT_SESSION = text(
    """
    UPDATE api_tokens SET revoked_at = now()
    WHERE id = (SELECT id FROM api_tokens WHERE user_id = :user_id AND name = :name AND revoked_at IS NULL
                ORDER BY coalesce(last_used_at, created_at), id LIMIT 1)
    RETURNING token_hash
    """
)
_REVOKE = text(
    """
    UPDATE api_tokens SET revoked_at = now()
    WHERE id = :id AND user_id = :user_id AND revoked_at IS NULL
    RETURNING token_hash
    """
)


async def list_tokens(conn: AsyncConnection, user_id: uuid.UUID) -> list[TokenRecord]:
    rows = (await conn.execute(_LIVE, {"user_id": user_id})).all()
    return [TokenRecord(**row._mapping) for row in rows]


def _too_many(limit: int) -> DomainError:
    return DomainError("too-many-tokens", f"a user may have at most {limit} live tokens: revoke one first")


async def _room_for_one(conn: AsyncConnection, user_id: uuid.UUID, *, limit: int, evict_session: bool) -> list[bytes]:
    """Lock the user and make sure one more live token fits; the hashes of tokens revoked to make room."""
    await conn.execute(_LOCK_USER, {"user_id": user_id})
    live = (await conn.execute(_COUNT_LIVE, {"user_id": user_id})).scalar_one()
    if live < limit:
        return []
    if evict_session:
        evicted = (await conn.execute(_EVICT_SESSION, {"user_id": user_id, "name": SESSION_TOKEN})).scalar()
        if evicted is not None:
            await announce_revoked(conn, bytes(evicted))
        if evicted is not None and live - 1 < limit:
            return [evicted]
    raise _too_many(limit)


async def create_token(
    conn: AsyncConnection, *, user_id: uuid.UUID, name: str, limit: int, evict_session: bool = False
) -> tuple[TokenRecord, str, list[bytes]]:
    """A new named token (and the token, shown once). Over the limit: 409 `too-many-tokens`, unless
    evict_session, when the least recently used token named "session" is revoked to make room (a login
    must not lock its user out). Also returns the hashes of tokens revoked here."""
    evicted = await _room_for_one(conn, user_id, limit=limit, evict_session=evict_session)
    token_id, created_at, token = await insert_token(conn, user_id=user_id, name=name)
    return TokenRecord(id=token_id, name=name, created_at=created_at, last_used_at=None), token, evicted


async def revoke_token(conn: AsyncConnection, *, user_id: uuid.UUID, token_id: uuid.UUID) -> bytes:
    """Revoke the caller's live token; its hash (to drop from this worker's cache). Another user's,
    an unknown or an already revoked token id: 404, nothing written."""
    token_hash = (await conn.execute(_REVOKE, {"id": token_id, "user_id": user_id})).scalar()
    if token_hash is None:
        raise not_found("token")
    await announce_revoked(conn, bytes(token_hash))
    return bytes(token_hash)


REVOKED_CHANNEL = "quits_token_revoked"
_NOTIFY = text(f"SELECT pg_notify('{REVOKED_CHANNEL}', encode(:h, 'hex'))")


async def announce_revoked(conn: AsyncConnection, token_hash: bytes) -> None:
    """Tell every worker (app.domain.revocations listens) at commit; nothing is sent if it rolls back."""
    await conn.execute(_NOTIFY, {"h": token_hash})


def render(token: TokenRecord) -> dict[str, Any]:
    """A token on the wire (schema TokenOut), never the token itself."""
    return {
        "id": str(token.id),
        "name": token.name,
        "created_at": rfc3339(token.created_at),
        "last_used_at": rfc3339(token.last_used_at) if token.last_used_at else None,
    }
