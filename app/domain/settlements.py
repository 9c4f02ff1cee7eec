"""Settlements: a payment from one member to another, capped by what each side owes or is owed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.core.errors import DomainError, invalid, not_found
from app.core.money import MoneyError, currency_decimals, format_amount, parse_amount
from app.core.preconditions import require_tag
from app.core.records import rfc3339
from app.domain.schemas import SettlementIn
from app.infra.config import Settings
from app.infra.db import keyset_params
from app.infra.ids import new_id
from app.infra.testhooks import Faults
from app.ledger import commands
from app.ledger.commands import Claim, Command, Outcome, Rejected

CREATED = 201
_COLUMNS = "id, group_id, from_user_id, to_user_id, amount_minor, currency, note, created_by, created_at, voided_at"
UPDATED = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementRecord:
    id: uuid.UUID
    group_id: uuid.UUID
    from_user_id: uuid.UUID
    to_user_id: uuid.UUID
    amount_minor: int
    currency: str
    note: str | None
    created_by: uuid.UUID
    created_at: datetime
    voided_at: datetime | None


def parse_settlement_amount(body: SettlementIn, currency: str) -> int:
    """Pure checks before any write: distinct parties and a valid, non-zero amount."""
    if body.from_user_id == body.to_user_id:
        raise invalid(("to_user_id",), "from_user_id and to_user_id must differ")
    try:
        return parse_amount(body.amount, currency_decimals(currency))
    except MoneyError as exc:
        raise invalid(("amount",), f"amount {exc}") from None


def render(s: SettlementRecord) -> dict[str, Any]:
    """The settlement on the wire (schema SettlementOut): the one place it is rendered."""
    return {
        "id": str(s.id),
        "group_id": str(s.group_id),
        "from_user_id": str(s.from_user_id),
        "to_user_id": str(s.to_user_id),
        "amount": format_amount(s.amount_minor, currency_decimals(s.currency)),
        "currency": s.currency,
        "note": s.note,
        "created_by": str(s.created_by),
        "created_at": rfc3339(s.created_at),
        "voided_at": rfc3339(s.voided_at) if s.voided_at else None,
    }


def etag(s: SettlementRecord) -> str:
    """A settlement has one version; its tag changes when it is voided."""
    return '"1-voided"' if s.voided_at is not None else '"1"'


def row(s: SettlementRecord) -> dict[str, Any]:
    return {name: getattr(s, name) for name in _COLUMNS.split(", ")}


async def create(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    claim: Claim,
    group_id: uuid.UUID,
    currency: str,
    body: SettlementIn,
    amount_minor: int,
    faults: Faults | None = None,
) -> tuple[Outcome, bytes]:
    """One round trip: membership and amount <= min(-net(from), net(to)) are checked under the locks."""
    record = SettlementRecord(
        id=new_id(),
        group_id=group_id,
        from_user_id=body.from_user_id,
        to_user_id=body.to_user_id,
        amount_minor=amount_minor,
        currency=currency,
        note=body.note,
        created_by=claim.user_id,
        created_at=datetime.now(UTC),
        voided_at=None,
    )
    response = orjson.dumps(render(record))
    cmd = {"caller": claim.user_id, "claim": claim.doc(status=CREATED, response=response), "settlement": row(record)}
    outcome = await commands.execute(
        pool, settings, Command.SETTLEMENT_CREATE, group_id, cmd, faults=faults, decimals=currency_decimals(currency)
    )
    return outcome, response


async def list_page(
    conn: AsyncConnection, group_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[SettlementRecord]:
    where = "AND (created_at, id) < (:after_at, :after_id)" if after else ""
    rows = await conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM settlements WHERE group_id = :g {where}"
            " ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        {"g": group_id, "limit": limit, **keyset_params(after)},
    )
    return [SettlementRecord(**r._mapping) for r in rows]


async def get(conn: AsyncConnection, group_id: uuid.UUID, settlement_id: uuid.UUID) -> SettlementRecord:
    row = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM settlements WHERE id = :id AND group_id = :g"),
            {"id": settlement_id, "g": group_id},
        )
    ).first()
    if row is None:
        raise not_found("settlement")
    return SettlementRecord(**row._mapping)


async def void(
    pool: asyncpg.Pool,
    engine: AsyncEngine,
    settings: Settings,
    *,
    claim: Claim,
    group_id: uuid.UUID,
    settlement_id: uuid.UUID,
    if_match: frozenset[str] | None = None,
) -> tuple[Outcome | None, SettlementRecord]:
    """Post the reversal of a settlement (not limited by balances) and set voided_at. One already
    voided is returned as it is and nothing is posted (but the key). If-Match as for expenses."""
    async with engine.connect() as conn:
        current = await get(conn, group_id, settlement_id)
    require_tag(etag(current), if_match)
    if current.voided_at is not None:
        if claim.key is None:
            return None, current
        key_only = {"caller": claim.user_id, "claim": claim.doc(status=UPDATED, response=orjson.dumps(render(current)))}
        return await commands.execute(pool, settings, Command.KEY_ONLY, group_id, key_only), current
    now = datetime.now(UTC)
    record = replace(current, voided_at=now)
    cmd = {
        "caller": claim.user_id,
        "claim": claim.doc(status=UPDATED, response=orjson.dumps(render(record))),
        "settlement_id": settlement_id,
        "voided_at": now,
    }
    try:
        return await commands.execute(pool, settings, Command.SETTLEMENT_VOID, group_id, cmd), record
    except Rejected as exc:
        if exc.sqlstate != commands.SETTLEMENT_VOIDED:
            raise
    if if_match is not None:
        raise DomainError("precondition-failed", "the settlement was voided since If-Match was read")
    async with engine.connect() as conn:
        return None, await get(conn, group_id, settlement_id)
