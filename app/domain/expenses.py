"""Expenses: the record, its one renderer, and the three writes (one ledger command each), plus reads.

The service reads what it needs, renders the response it will return (stored with the
Idempotency-Key in the same statement), and lets the database check membership and versions under
its locks. Validation of a payload is pure (app.domain.expense_drafts). Services never commit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.core.errors import DomainError, not_found
from app.core.money import currency_decimals, format_amount
from app.core.preconditions import require_tag
from app.core.records import Entry, rfc3339
from app.domain.expense_drafts import ExpenseDraft
from app.infra.config import Settings
from app.infra.db import keyset_params
from app.infra.ids import new_id
from app.infra.testhooks import Faults
from app.ledger import commands
from app.ledger.commands import Claim, Command, Outcome, Rejected

CREATED, UPDATED = 201, 200


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpenseRecord:
    """An expense as stored: the fields are the columns of table expenses (app.models)."""

    id: uuid.UUID
    group_id: uuid.UUID
    description: str
    currency: str
    amount_minor: int
    exchange_rate: str | None
    group_currency: str
    group_amount_minor: int
    payers: tuple[Entry, ...]
    split_type: str
    owed: tuple[Entry, ...]  # column shares
    date: dt.date
    category: str | None
    notes: str | None
    version: int
    created_by: uuid.UUID
    created_at: datetime
    updated_by: uuid.UUID
    updated_at: datetime
    voided_at: datetime | None
    recurring_id: uuid.UUID | None = None  # an occurrence of this recurring rule,
    occurrence_date: dt.date | None = None  # on this date (as scheduled; `date` may be edited later)

    @property
    def paid_by(self) -> uuid.UUID | None:
        return self.payers[0][0] if len(self.payers) == 1 else None


def render(expense: ExpenseRecord) -> dict[str, Any]:
    """The expense on the wire (schema ExpenseOut): the one place it is rendered."""
    decimals, group_decimals = currency_decimals(expense.currency), currency_decimals(expense.group_currency)
    paid_by = expense.paid_by
    return {
        "id": str(expense.id),
        "group_id": str(expense.group_id),
        "description": expense.description,
        "amount": format_amount(expense.amount_minor, decimals),
        "currency": expense.currency,
        "exchange_rate": expense.exchange_rate,
        "group_amount": format_amount(expense.group_amount_minor, group_decimals),
        "paid_by": str(paid_by) if paid_by else None,
        "payers": [{"user_id": str(u), "amount": format_amount(a, group_decimals)} for u, a in expense.payers],
        "split_type": expense.split_type,
        "shares": [{"user_id": str(u), "amount": format_amount(a, group_decimals)} for u, a in expense.owed],
        "date": expense.date.isoformat(),
        "category": expense.category,
        "notes": expense.notes,
        "version": expense.version,
        "created_by": str(expense.created_by),
        "created_at": rfc3339(expense.created_at),
        "updated_by": str(expense.updated_by),
        "updated_at": rfc3339(expense.updated_at),
        "voided_at": rfc3339(expense.voided_at) if expense.voided_at else None,
        "recurring_id": str(expense.recurring_id) if expense.recurring_id else None,
    }


def etag(expense: ExpenseRecord) -> str:
    """The entity tag of an expense's current state: it changes with every version and with a void."""
    return f'"{expense.version}-voided"' if expense.voided_at is not None else f'"{expense.version}"'


def _content(draft: ExpenseDraft, *, date: dt.date, user_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    """The record fields a draft sets (on create and on edit)."""
    return {
        "description": draft.description,
        "currency": draft.currency,
        "amount_minor": draft.amount_minor,
        "exchange_rate": draft.exchange_rate,
        "group_amount_minor": draft.group_amount_minor,
        "payers": draft.payers,
        "split_type": draft.split_type,
        "owed": draft.owed,
        "date": draft.date or date,
        "category": draft.category,
        "notes": draft.notes,
        "updated_by": user_id,
        "updated_at": now,
    }


_CONTENT = ("description", "currency", "amount_minor", "exchange_rate", "group_amount_minor", "payers",
            "split_type", "owed", "date", "category", "notes")  # fmt: skip


def _unchanged(expense: ExpenseRecord, edited: ExpenseRecord) -> bool:
    return expense.voided_at is None and all(getattr(expense, f) == getattr(edited, f) for f in _CONTENT)


def row(expense: ExpenseRecord) -> dict[str, Any]:
    """The expenses row the write functions store (jsonb_populate_record reads it by column name)."""
    return {
        "id": expense.id,
        "group_id": expense.group_id,
        "description": expense.description,
        "currency": expense.currency,
        "amount_minor": expense.amount_minor,
        "exchange_rate": expense.exchange_rate,
        "group_currency": expense.group_currency,
        "group_amount_minor": expense.group_amount_minor,
        "paid_by": expense.paid_by,
        "payers": [[u, a] for u, a in expense.payers],
        "split_type": expense.split_type,
        "shares": [[u, a] for u, a in expense.owed],
        "date": expense.date,
        "category": expense.category,
        "notes": expense.notes,
        "version": expense.version,
        "created_by": expense.created_by,
        "created_at": expense.created_at,
        "updated_by": expense.updated_by,
        "updated_at": expense.updated_at,
        "voided_at": expense.voided_at,
        "recurring_id": expense.recurring_id,
        "occurrence_date": expense.occurrence_date,
    }


def _row(expense: ExpenseRecord) -> dict[str, Any]:
    """The row as a write command carries it: null columns are left out (a missing key reads as null, and
    the database parses a shorter command)."""
    return {k: v for k, v in row(expense).items() if v is not None}


def _postings(draft: ExpenseDraft) -> dict[str, Any]:
    """What to post (+paid to each payer, -owed to each participant) and who must be a current member
    (payers first, so a payer who left is reported as such)."""
    entries = [[u, a] for u, a in draft.payers] + [[u, -a] for u, a in draft.owed if a != 0]
    members = [[draft.payer_field, u] for u, _ in draft.payers] + [["participants", u] for u, _ in draft.owed]
    return {"entries": entries, "members": members}


# ---- writes: one command each -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Occurrence:
    """The expense is occurrence `date` of recurring rule `rule_id`, read at `expected_version`; the
    rule's next occurrence is then `next_date` (None: this is its last). quits_recurring_advance moves
    the rule in the same statement, or refuses (QUR12) when the rule is no longer at that version."""

    rule_id: uuid.UUID
    date: dt.date
    expected_version: int
    next_date: dt.date | None


async def create(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    claim: Claim,
    group_id: uuid.UUID,
    group_currency: str,
    draft: ExpenseDraft,
    faults: Faults | None = None,
    occurrence: Occurrence | None = None,
) -> tuple[Outcome, bytes]:
    """One round trip: the response is rendered first and stored with the key, in the same statement.
    An occurrence of a recurring rule is dated as scheduled and advances its rule in that statement."""
    now = datetime.now(UTC)
    record = ExpenseRecord(
        id=new_id(),
        group_id=group_id,
        group_currency=group_currency,
        version=1,
        created_by=claim.user_id,
        created_at=now,
        voided_at=None,
        recurring_id=occurrence.rule_id if occurrence else None,
        occurrence_date=occurrence.date if occurrence else None,
        **_content(draft, date=occurrence.date if occurrence else now.date(), user_id=claim.user_id, now=now),
    )
    if occurrence is not None and record.date != occurrence.date:
        raise ValueError("an occurrence is dated as scheduled")
    response = orjson.dumps(render(record))
    cmd = {
        "caller": claim.user_id,
        "claim": claim.doc(status=CREATED, response=response),
        "expense": _row(record),
        **_postings(draft),
    }
    if occurrence is not None:
        cmd["occurrence"] = {"expected_version": occurrence.expected_version, "next_date": occurrence.next_date}
    outcome = await commands.execute(pool, settings, Command.EXPENSE_CREATE, group_id, cmd, faults=faults)
    return outcome, response


async def update(
    pool: asyncpg.Pool,
    engine: AsyncEngine,
    settings: Settings,
    *,
    claim: Claim,
    group_id: uuid.UUID,
    expense_id: uuid.UUID,
    draft: ExpenseDraft,
    if_match: frozenset[str] | None = None,
) -> tuple[Outcome | None, ExpenseRecord]:
    """Reverse the current version's entries and post the new ones; version + 1. Read, render, then
    one command that posts only if the version read is still current: else, with If-Match, 412;
    without, read again. An edit equal to the current version writes nothing but its key."""
    for _ in range(settings.retry_max_attempts):
        async with engine.connect() as conn:
            current = await get(conn, group_id, expense_id)
        require_tag(etag(current), if_match)
        now = datetime.now(UTC)
        record = replace(
            current, version=current.version + 1, **_content(draft, date=current.date, user_id=claim.user_id, now=now)
        )
        if _unchanged(current, record):
            return await _key_only(pool, settings, claim=claim, group_id=group_id, current=current), current
        response = orjson.dumps(render(record))
        cmd = {
            "caller": claim.user_id,
            "claim": claim.doc(status=UPDATED, response=response),
            "expected_version": current.version,
            "expense": _row(record),
            "previous": render(current),
            **_postings(draft),
        }
        try:
            return await commands.execute(pool, settings, Command.EXPENSE_EDIT, group_id, cmd), record
        except Rejected as exc:
            if exc.sqlstate != commands.EXPENSE_CHANGED or if_match is not None:
                raise
    raise DomainError("try-again", "the expense kept changing while it was being edited; retry later")


async def void(
    pool: asyncpg.Pool,
    engine: AsyncEngine,
    settings: Settings,
    *,
    claim: Claim,
    group_id: uuid.UUID,
    expense_id: uuid.UUID,
    if_match: frozenset[str] | None = None,
) -> tuple[Outcome | None, ExpenseRecord]:
    """Post the reversal and set voided_at. An expense already voided is returned as it is, and
    nothing is posted (but the key). If-Match as for update."""
    for _ in range(settings.retry_max_attempts):
        async with engine.connect() as conn:
            current = await get(conn, group_id, expense_id)
        require_tag(etag(current), if_match)
        if current.voided_at is not None:
            return await _key_only(pool, settings, claim=claim, group_id=group_id, current=current), current
        now = datetime.now(UTC)
        record = replace(current, voided_at=now)
        cmd = {
            "caller": claim.user_id,
            "claim": claim.doc(status=UPDATED, response=orjson.dumps(render(record))),
            "expense_id": expense_id,
            "expected_version": current.version,
            "voided_at": now,
        }
        try:
            return await commands.execute(pool, settings, Command.EXPENSE_VOID, group_id, cmd), record
        except Rejected as exc:
            if exc.sqlstate not in (commands.EXPENSE_CHANGED, commands.EXPENSE_VOIDED):
                raise
            if if_match is not None:
                raise DomainError("precondition-failed", "the expense changed since If-Match was read") from None
    raise DomainError("try-again", "the expense kept changing while it was being voided; retry later")


async def _key_only(
    pool: asyncpg.Pool, settings: Settings, *, claim: Claim, group_id: uuid.UUID, current: ExpenseRecord
) -> Outcome | None:
    """A request that changes nothing writes nothing but its Idempotency-Key (so a retry replays)."""
    if claim.key is None:
        return None
    cmd = {"caller": claim.user_id, "claim": claim.doc(status=UPDATED, response=orjson.dumps(render(current)))}
    return await commands.execute(pool, settings, Command.KEY_ONLY, group_id, cmd)


# ---- reads --------------------------------------------------------------------------------------

_COLUMNS = (
    "id, group_id, description, currency, amount_minor, exchange_rate, group_currency, group_amount_minor,"
    " payers, split_type, shares, date, category, notes, version, created_by, created_at, updated_by, updated_at,"
    " voided_at, recurring_id, occurrence_date"
)


def _entries(pairs: list[list[Any]]) -> tuple[Entry, ...]:
    return tuple((uuid.UUID(str(u)), int(a)) for u, a in pairs)


def _record(row: Any) -> ExpenseRecord:
    fields = dict(row._mapping)
    fields["payers"] = _entries(fields["payers"])
    fields["owed"] = _entries(fields.pop("shares"))
    return ExpenseRecord(**fields)


async def get(conn: AsyncConnection, group_id: uuid.UUID, expense_id: uuid.UUID) -> ExpenseRecord:
    row = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM expenses WHERE id = :id AND group_id = :g"),
            {"id": expense_id, "g": group_id},
        )
    ).first()
    if row is None:
        raise not_found("expense")
    return _record(row)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpenseFilter:
    """List filters: dates inclusive, category exact."""

    since: dt.date | None = None
    until: dt.date | None = None
    category: str | None = None


async def list_page(
    conn: AsyncConnection,
    group_id: uuid.UUID,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
    where: ExpenseFilter = ExpenseFilter(),
) -> list[ExpenseRecord]:
    clauses = ["group_id = :g"]
    if after:
        clauses.append("(created_at, id) < (:after_at, :after_id)")
    if where.since:
        clauses.append("date >= :since")
    if where.until:
        clauses.append("date <= :until")
    if where.category:
        clauses.append("category = :category")
    rows = await conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM expenses WHERE {' AND '.join(clauses)}"
            " ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        {"g": group_id, "limit": limit, "since": where.since, "until": where.until, "category": where.category,
         **keyset_params(after)},
    )
    return [_record(r) for r in rows]


async def versions(conn: AsyncConnection, group_id: uuid.UUID, expense_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every version, ascending: the superseded ones as stored when they were replaced, then the current."""
    current = await get(conn, group_id, expense_id)
    rows = await conn.execute(
        text("SELECT doc FROM expense_versions WHERE group_id = :g AND expense_id = :e ORDER BY version"),
        {"g": group_id, "e": expense_id},
    )
    latest = render(current)
    # Versions stored before recurring rules existed lack recurring_id, which an expense never changes.
    return [{"recurring_id": latest["recurring_id"], **dict(r.doc)} for r in rows] + [latest]
