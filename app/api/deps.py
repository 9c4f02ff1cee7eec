"""Dependency aliases: EngineDep, SettingsDep, CurrentUser.

Every dependency is `async def`: FastAPI runs a plain `def` dependency in a worker thread, a
thread hand-off on every request for what is an attribute read.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.errors import DomainError, not_found
from app.domain.groups import group_currency, is_member
from app.domain.users import TokenCache, UserRecord, bearer_token_of, hash_token, user_by_token
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


async def current_user(request: Request) -> UserRecord:
    """The caller, from the bearer token (cached: users and tokens never change). Reads the engine
    from app.state rather than through a sub-dependency: every route pays for this one."""
    engine: AsyncEngine = request.app.state.engine
    token = bearer_token(request)
    cache: TokenCache = request.app.state.token_cache
    key = hash_token(token)
    user = cache.get(key)
    if user is None:
        async with engine.connect() as conn:
            user = await user_by_token(conn, token)
        if user is None:
            raise _unauthorized("invalid api token")
        cache.put(key, user)
    return user


CurrentUser = Annotated[UserRecord, Depends(current_user)]


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
