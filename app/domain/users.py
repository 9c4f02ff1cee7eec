"""Users and the bearer tokens that name them. Tokens are random, shown once, stored as SHA-256 (they
carry 256 bits) in api_tokens (app.domain.tokens creates and revokes them)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from time import monotonic
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.errors import DomainError
from app.core.records import rfc3339
from app.infra.ids import new_id

TOKEN_PREFIX = "qt_"
MAX_TOKEN_LENGTH = 200
REGISTRATION_TOKEN = "registration"


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


class TokenCache:
    """Token hash → user, per worker, bounded (the oldest entry goes first). An entry is served for at
    most its ttl counted from *before* the database read that found the token:

    - while this worker listens for revocations (app.domain.revocations: PostgreSQL NOTIFY, sent when a
      revocation commits), `listen_ttl_s` (minutes): a revocation evicts the token at once;
    - otherwise (not yet connected, or the listening connection was lost) `ttl_s` (at most 1 s), so a
      token revoked at time t is refused by every worker from t + ttl_s on in any case.

    A revocation that arrives while the token is being read keeps that read out of the cache. A hit is
    a dict lookup and one clock read (app.api.hotpath relies on it)."""

    def __init__(self, *, size: int, ttl_s: float, listen_ttl_s: float = 0.0) -> None:
        assert size > 0 and 0 <= ttl_s <= 1.0 and listen_ttl_s >= 0
        self._size = size
        self._ttl_s = ttl_s
        self._listen_ttl_s = listen_ttl_s
        self._listening = False
        self._items: OrderedDict[bytes, tuple[UserRecord, float]] = OrderedDict()
        self._revoked: OrderedDict[bytes, float] = OrderedDict()  # recent revocations: hash → when

    def get(self, key: bytes) -> UserRecord | None:
        entry = self._items.get(key)
        if entry is not None and entry[1] > monotonic():
            return entry[0]
        return None

    def put(self, key: bytes, user: UserRecord, *, read_at: float) -> None:
        """Cache user for the token hash key; read_at is monotonic() taken before the lookup began."""
        ttl = self._listen_ttl_s if self._listening else self._ttl_s
        if ttl <= 0 or self._revoked.get(key, float("-inf")) >= read_at:
            return
        self._items[key] = (user, read_at + ttl)
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def discard(self, key: bytes) -> None:
        self._items.pop(key, None)

    def revoked(self, key: bytes) -> None:
        """A revocation committed (a NOTIFY): evict, and keep reads begun before now out of the cache."""
        self._items.pop(key, None)
        self._revoked[key] = monotonic()
        self._revoked.move_to_end(key)
        while len(self._revoked) > self._size:
            self._revoked.popitem(last=False)

    def listening(self, on: bool) -> None:
        """Entered or left listening mode: either way, forget every entry (revocations may have been
        missed while not listening, and entries cached for minutes must not outlive the listener)."""
        self._listening = on
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


_INSERT_TOKEN = text(
    "INSERT INTO api_tokens (id, user_id, name, token_hash) VALUES (:id, :user_id, :name, :h) RETURNING created_at"
)


async def insert_token(conn: AsyncConnection, *, user_id: uuid.UUID, name: str) -> tuple[uuid.UUID, datetime, str]:
    """A new live token for user_id: its id, created_at and the token itself (shown once, stored hashed)."""
    token, token_id = new_token(), new_id()
    params = {"id": token_id, "user_id": user_id, "name": name, "h": hash_token(token)}
    created_at: datetime = (await conn.execute(_INSERT_TOKEN, params)).scalar_one()
    return token_id, created_at, token


_INSERT_USER = text(
    """
    INSERT INTO users (id, name, email, password_hash) VALUES (:id, :name, :email, :password_hash)
    ON CONFLICT ((lower(email))) DO NOTHING
    RETURNING created_at
    """
)


async def create_user(
    conn: AsyncConnection, *, name: str, email: str, password_hash: str | None
) -> tuple[UserRecord, str]:
    """The user and its first token (named "registration"), in the caller's transaction."""
    user_id = new_id()
    params = {"id": user_id, "name": name, "email": email, "password_hash": password_hash}
    created_at = (await conn.execute(_INSERT_USER, params)).scalar_one_or_none()
    if created_at is None:
        raise DomainError("email-taken", "a user with this email already exists")
    _, _, token = await insert_token(conn, user_id=user_id, name=REGISTRATION_TOKEN)
    return UserRecord(id=user_id, name=name, email=email, created_at=created_at), token


_BY_TOKEN = text(
    """
    SELECT u.id, u.name, u.email, u.created_at, t.id AS token_id,
           t.last_used_at IS NULL OR t.last_used_at < now() - make_interval(secs => :touch_after_s) AS stale
    FROM api_tokens t JOIN users u ON u.id = t.user_id
    WHERE t.token_hash = :h AND t.revoked_at IS NULL
    """
)
_TOUCH = text(
    """
    UPDATE api_tokens SET last_used_at = now()
    WHERE id = :id AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => :touch_after_s))
    """
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenOwner:
    user: UserRecord
    token_id: uuid.UUID
    stale: bool  # last_used_at is older than touch_after_s (or never set): call touch_token


async def user_by_token(conn: AsyncConnection, token_hash: bytes, *, touch_after_s: int) -> TokenOwner | None:
    """The owner of a live token, or None (unknown or revoked)."""
    params = {"h": token_hash, "touch_after_s": touch_after_s}
    row = (await conn.execute(_BY_TOKEN, params)).first()
    if row is None:
        return None
    user = UserRecord(id=row.id, name=row.name, email=row.email, created_at=row.created_at)
    return TokenOwner(user=user, token_id=row.token_id, stale=row.stale)


async def touch_token(conn: AsyncConnection, token_id: uuid.UUID, *, touch_after_s: int) -> None:
    """last_used_at = now(), unless another worker did it within touch_after_s: a token's row is written
    at most about once per touch_after_s, never once per request."""
    await conn.execute(_TOUCH, {"id": token_id, "touch_after_s": touch_after_s})


def render(user: UserRecord) -> dict[str, Any]:
    """The user on the wire (schema UserOut): the one place it is rendered."""
    return {"id": str(user.id), "name": user.name, "email": user.email, "created_at": rfc3339(user.created_at)}
