"""Dependency aliases: EngineDep, SettingsDep, CurrentUser, AccountsDep.

Every dependency is `async def`: FastAPI runs a plain `def` dependency in a worker thread, a
thread hand-off on every request for what is an attribute read.
"""

from __future__ import annotations

from time import monotonic
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.errors import DomainError, not_found
from app.domain.accounts import Services
from app.domain.groups import group_currency, is_member
from app.domain.users import TokenCache, UserRecord, bearer_token_of, hash_token, touch_token, user_by_token
from app.infra.cache import BoundedCache
from app.infra.config import Settings


async def get_engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def _unauthorized(detail: str) -> DomainError:
    return DomainError("unauthorized", detail)


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("missing Authorization: Bearer token")
    token = bearer_token_of(header)
    if token is None:
        raise _unauthorized("Authorization must be: Bearer <api_token>")
    return token


async def _look_up(request: Request, key: bytes) -> UserRecord:
    """The owner of a live token from the database; last_used_at written when it is stale."""
    engine: AsyncEngine = request.app.state.engine
    touch_after_s = request.app.state.settings.token_touch_interval_s
    async with engine.connect() as conn:
        owner = await user_by_token(conn, key, touch_after_s=touch_after_s)
        if owner is None:
            raise _unauthorized("invalid api token")
        if owner.stale:
            await touch_token(conn, owner.token_id, touch_after_s=touch_after_s)
            await conn.commit()
    return owner.user


async def current_user(request: Request) -> UserRecord:
    """The caller, from the bearer token. A worker caches token -> user for at most token_cache_ttl_ms
    (app.domain.users.TokenCache), so a revoked token is refused everywhere within that time. Reads
    app.state rather than sub-dependencies: every route pays for this one."""
    return await user_for_token(request, bearer_token(request))


async def user_for_token(request: Request, token: str) -> UserRecord:
    """The owner of a live API token (a bearer token, or the web app's session cookie), through the
    worker's short-lived cache; 401 `unauthorized` when it is unknown or revoked."""
    cache: TokenCache = request.app.state.token_cache
    key = hash_token(token)
    user = cache.get(key)
    if user is None:
        read_at = monotonic()  # before the read: the entry cannot outlive a revocation by more than the ttl
        user = await _look_up(request, key)
        cache.put(key, user, read_at=read_at)
    return user


CurrentUser = Annotated[UserRecord, Depends(current_user)]


async def get_accounts(request: Request) -> Services:
    services: Services = request.app.state.accounts
    return services


AccountsDep = Annotated[Services, Depends(get_accounts)]


async def writable_currency(request: Request, engine: AsyncEngine, group_id: UUID, user: UserRecord) -> str:
    """The group's currency for validating a write's money; cached, since a group's currency never changes.

    Membership is checked by the write itself, under its locks; this only needs the group to exist."""
    cache: BoundedCache[UUID, str] = request.app.state.currency_cache
    currency = cache.get(group_id)
    if currency is None:
        async with engine.connect() as conn:
            currency = await group_currency(conn, group_id)
        cache.put(group_id, currency)
    return currency


async def not_found_unless_member(engine: AsyncEngine, group_id: UUID, user_id: UUID) -> None:
    """On a rejected write, a caller outside the group must see 404, never details of its payload rules."""
    async with engine.connect() as conn:
        if not await is_member(conn, group_id, user_id):
            raise not_found("group")
