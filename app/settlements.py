"""Settlements: a payment from one member to another, capped by what each side owes or is owed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app import ledger
from app.errors import ProblemError, validation_error
from app.groups import GroupRecord
from app.money import MoneyError, currency_decimals, format_amount, parse_amount
from app.pagination import keyset_params
from app.schemas import SettlementIn


@dataclass(frozen=True, slots=True)
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


def parse_settlement_amount(body: SettlementIn, currency: str) -> int:
    """Pure checks before any write: distinct parties and a valid, non-zero amount."""
    if body.from_user_id == body.to_user_id:
        raise validation_error(["body", "to_user_id"], "from_user_id and to_user_id must differ")
    try:
        return parse_amount(body.amount, currency_decimals(currency))
    except MoneyError as exc:
        raise validation_error(["body", "amount"], f"amount {exc}") from None


def check_within_balance(amount_minor: int, from_net: int, to_net: int, decimals: int) -> None:
    """amount <= min(-net(from), net(to)): a settlement never overshoots either side."""
    limit = min(-from_net, to_net)
    if amount_minor > limit:
        shown = format_amount(max(limit, 0), decimals)
        raise ProblemError(
            422,
            "settlement-exceeds-balance",
            f"amount exceeds what the payer owes or the payee is owed (at most {shown})",
            errors=[{"loc": ["body", "amount"], "msg": f"must be at most {shown}"}],
        )


async def create(
    conn: AsyncConnection, group: GroupRecord, body: SettlementIn, amount_minor: int, creator: uuid.UUID
) -> SettlementRecord:
    nets = await ledger.lock_balances(conn, group.id, (body.from_user_id, body.to_user_id))
    for field, user_id in (("from_user_id", body.from_user_id), ("to_user_id", body.to_user_id)):
        if user_id not in nets:
            raise validation_error(["body", field], f"{field} must be a current member of the group")
    # Checked after taking the locks: the nets cannot move until this transaction ends.
    check_within_balance(
        amount_minor, nets[body.from_user_id], nets[body.to_user_id], currency_decimals(group.currency)
    )
    record = SettlementRecord(
        uuid.uuid4(),
        group.id,
        body.from_user_id,
        body.to_user_id,
        amount_minor,
        group.currency,
        body.note,
        creator,
        datetime.now(UTC),
    )
    await conn.execute(
        text(
            "INSERT INTO settlements (id, group_id, from_user_id, to_user_id, amount_minor, currency, note,"
            " created_by, created_at) VALUES (:id, :g, :f, :t, :a, :c, :n, :by, :at)"
        ),
        {
            "id": record.id,
            "g": group.id,
            "f": record.from_user_id,
            "t": record.to_user_id,
            "a": amount_minor,
            "c": group.currency,
            "n": record.note,
            "by": creator,
            "at": record.created_at,
        },
    )
    entries = ledger.settlement_entries(record.from_user_id, record.to_user_id, amount_minor)
    await ledger.post(conn, group.id, entries, ledger.Source("settlement", settlement_id=record.id))
    return record


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
        "created_at": s.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
