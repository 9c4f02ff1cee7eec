"""Settlements: a payment from one member to another, capped by what each side owes or is owed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.api.pagination import keyset_params
from app.api.problems import validation_error
from app.core.money import MoneyError, currency_decimals, format_amount, parse_amount
from app.core.records import SettlementRecord, rfc3339
from app.domain.schemas import SettlementIn
from app.infra.config import Settings
from app.infra.ids import new_id
from app.infra.testhooks import Faults
from app.ledger import service as ledger


def parse_settlement_amount(body: SettlementIn, currency: str) -> int:
    """Pure checks before any write: distinct parties and a valid, non-zero amount."""
    if body.from_user_id == body.to_user_id:
        raise validation_error(["body", "to_user_id"], "from_user_id and to_user_id must differ")
    try:
        return parse_amount(body.amount, currency_decimals(currency))
    except MoneyError as exc:
        raise validation_error(["body", "amount"], f"amount {exc}") from None


async def create(
    pool: asyncpg.Pool,
    settings: Settings,
    claim: ledger.Claim,
    group_id: uuid.UUID,
    currency: str,
    body: SettlementIn,
    amount_minor: int,
    creator: uuid.UUID,
    faults: Faults | None = None,
) -> ledger.Written:
    """One round trip: membership and amount <= min(-net(from), net(to)) are checked under the locks."""
    record = SettlementRecord(
        new_id(),
        group_id,
        body.from_user_id,
        body.to_user_id,
        amount_minor,
        currency,
        body.note,
        creator,
        datetime.now(UTC),
    )
    response = orjson.dumps(render(record))
    return await ledger.create_settlement(pool, settings, claim, record, response, faults)


async def list_page(
    conn: AsyncConnection, group_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[SettlementRecord]:
    where = "AND (created_at, id) < (:after_at, :after_id)" if after else ""
    rows = await conn.execute(
        text(
            "SELECT id, group_id, from_user_id, to_user_id, amount_minor, currency, note, created_by, created_at"
            f" FROM settlements WHERE group_id = :g {where} ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        {"g": group_id, "limit": limit, **keyset_params(after)},
    )
    return [SettlementRecord(*r) for r in rows]


def render(s: SettlementRecord) -> dict[str, Any]:
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
    }
