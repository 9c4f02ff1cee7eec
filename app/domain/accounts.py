"""Accounts: registration with an optional password, password logins (sessions), password changes.

Each flow is: a short transaction that reads and counts (app.domain.login_limits), then the Argon2id
work outside any transaction (app.infra.passwords, in a thread), then a short transaction that writes.
No row lock is held while a password is hashed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.core.errors import DomainError, invalid
from app.core.passwords import weakness
from app.domain import login_limits
from app.domain.login_limits import Attempt
from app.domain.tokens import SESSION_TOKEN, TokenRecord, create_token
from app.domain.users import UserRecord, create_user
from app.infra.config import Settings
from app.infra.passwords import Passwords
from app.infra.tx import run_transaction

INVALID_CREDENTIALS = "the email or the password is wrong"

_BY_EMAIL = text("SELECT id, password_hash FROM users WHERE lower(email) = lower(:email)")
_HASH_OF = text("SELECT password_hash FROM users WHERE id = :id")
_SET_HASH = text(
    "UPDATE users SET password_hash = :new WHERE id = :id AND password_hash IS NOT DISTINCT FROM :old RETURNING id"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """What the account flows need: the engine, the settings and the password hasher."""

    engine: AsyncEngine
    settings: Settings
    passwords: Passwords


@dataclass(frozen=True, slots=True, kw_only=True)
class Checked:
    """A counted password check: whose stored hash to verify against, and the attempt to take back."""

    user_id: uuid.UUID | None
    password_hash: str | None
    attempt: Attempt | None
    wait_s: int | None


def _require_strong(password: str, *, email: str, field: str) -> None:
    problem = weakness(password, email=email)
    if problem is not None:
        raise invalid((field,), problem)


async def register(svc: Services, *, name: str, email: str, password: str | None) -> tuple[UserRecord, str]:
    """The new user and its "registration" token. A weak password: 422 before anything is written."""
    if password is not None:
        _require_strong(password, email=email, field="password")
    password_hash = await svc.passwords.hash(password) if password is not None else None

    async def work(conn: AsyncConnection) -> tuple[UserRecord, str]:
        return await create_user(conn, name=name, email=email, password_hash=password_hash)

    return await run_transaction(svc.engine, svc.settings, work)


async def _count_login(conn: AsyncConnection, *, email: str, host: str | None, settings: Settings) -> Checked:
    row = (await conn.execute(_BY_EMAIL, {"email": email})).first()
    user_id = row.id if row is not None else None
    attempt = login_limits.attempt_for(user_id=user_id, email=email, host=host)
    wait_s = await login_limits.count(conn, attempt, settings)
    password_hash = row.password_hash if row is not None else None
    return Checked(user_id=user_id, password_hash=password_hash, attempt=attempt, wait_s=wait_s)


async def login(
    svc: Services, *, email: str, password: str, host: str | None
) -> tuple[TokenRecord, str, list[bytes]]:
    """A new "session" token for the right email and password. Wrong email or wrong password: the same
    401 `invalid-credentials` after the same work (an unknown email is verified against a dummy hash)."""
    checked = await run_transaction(
        svc.engine, svc.settings, lambda c: _count_login(c, email=email, host=host, settings=svc.settings)
    )
    if checked.wait_s is not None:
        raise login_limits.too_many(checked.wait_s)
    if not await svc.passwords.verify(checked.password_hash, password) or checked.user_id is None:
        raise DomainError("invalid-credentials", INVALID_CREDENTIALS)
    old = checked.password_hash
    rehashed = await svc.passwords.hash(password) if old and svc.passwords.needs_rehash(old) else None

    async def work(conn: AsyncConnection) -> tuple[TokenRecord, str, list[bytes]]:
        assert checked.user_id is not None and checked.attempt is not None
        await login_limits.take_back(conn, checked.attempt)
        if rehashed is not None:  # better parameters since this hash was made; a concurrent change wins
            await conn.execute(_SET_HASH, {"id": checked.user_id, "old": old, "new": rehashed})
        limit = svc.settings.max_tokens_per_user
        return await create_token(conn, user_id=checked.user_id, name=SESSION_TOKEN, limit=limit, evict_session=True)

    return await run_transaction(svc.engine, svc.settings, work)


async def _count_change(
    conn: AsyncConnection, *, user: UserRecord, current: str | None, host: str | None, settings: Settings
) -> Checked:
    stored = (await conn.execute(_HASH_OF, {"id": user.id})).scalar()
    if stored is None:  # no password yet: the bearer token is all it takes to set one
        return Checked(user_id=user.id, password_hash=None, attempt=None, wait_s=None)
    if current is None:
        raise invalid(("current_password",), "current_password is required: the account has a password")
    attempt = login_limits.attempt_for(user_id=user.id, email=user.email, host=host)
    wait_s = await login_limits.count(conn, attempt, settings)
    return Checked(user_id=user.id, password_hash=stored, attempt=attempt, wait_s=wait_s)


async def change_password(
    svc: Services, *, user: UserRecord, current: str | None, new: str, host: str | None
) -> None:
    """Set or change the caller's password. A wrong current password: 403 `invalid-current-password`
    (counted like a failed login); a concurrent change that got there first: 409 `password-changed`."""
    _require_strong(new, email=user.email, field="new_password")
    checked = await run_transaction(
        svc.engine,
        svc.settings,
        lambda c: _count_change(c, user=user, current=current, host=host, settings=svc.settings),
    )
    if checked.wait_s is not None:
        raise login_limits.too_many(checked.wait_s)
    if checked.password_hash is not None and not await svc.passwords.verify(checked.password_hash, current or ""):
        raise DomainError("invalid-current-password", "current_password is wrong")
    new_hash = await svc.passwords.hash(new)

    async def work(conn: AsyncConnection) -> None:
        params = {"id": user.id, "old": checked.password_hash, "new": new_hash}
        if (await conn.execute(_SET_HASH, params)).first() is None:
            raise DomainError("password-changed", "the password was changed meanwhile; retry with the new one")
        if checked.attempt is not None:
            await login_limits.take_back(conn, checked.attempt)

    await run_transaction(svc.engine, svc.settings, work)
