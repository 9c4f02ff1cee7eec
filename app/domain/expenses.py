"""Expenses: validate a payload into owed amounts (pure), render, and the three writes.

Every write is one ledger command (app.ledger.commands): the service reads what it needs, renders
the response it will return (stored with the Idempotency-Key in the same statement), and lets the
database check membership and versions under its locks. Services never commit.
"""

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
from app.core.records import Entry, rfc3339
from app.core.splits import SplitError, parse_percentage, split_equal, split_exact, split_percentage, split_shares
from app.domain.schemas import ExpenseIn, ParticipantIn
from app.infra.config import Settings
from app.infra.db import keyset_params
from app.infra.ids import new_id
from app.infra.testhooks import Faults
from app.ledger import commands
from app.ledger.commands import Claim, Command, Outcome, Rejected
from app.ledger.postings import expense_entries

_FIELD_FOR_SPLIT = {"equal": None, "percentage": "percentage", "exact": "amount", "shares": "shares"}
_SPLIT_FIELDS = ("percentage", "amount", "shares")
CREATED, UPDATED = 201, 200


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpenseRecord:
    id: uuid.UUID
    group_id: uuid.UUID
    description: str
    amount_minor: int
    currency: str
    paid_by: uuid.UUID
    split_type: str
    owed: tuple[Entry, ...]  # column shares: ascending user_id, sums to amount_minor
    version: int
    created_by: uuid.UUID
    created_at: datetime
    updated_at: datetime
    voided_at: datetime | None

    @property
    def user_ids(self) -> frozenset[uuid.UUID]:
        return frozenset({self.paid_by, *(user_id for user_id, _ in self.owed)})


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpenseDraft:
    description: str
    amount_minor: int
    paid_by: uuid.UUID
    split_type: str
    owed: tuple[Entry, ...]  # ascending user_id, sums to amount_minor


# ---- pure: payload → draft ---------------------------------------------------------------------


def _check_participant_fields(split_type: str, index: int, p: ParticipantIn) -> None:
    wanted = _FIELD_FOR_SPLIT[split_type]
    for field in _SPLIT_FIELDS:
        given = getattr(p, field) is not None
        if given and field != wanted:
            raise invalid(("participants", index, field), f"{field} is not allowed with split_type {split_type}")
        if not given and field == wanted:
            raise invalid(("participants", index, field), f"{field} is required for {split_type}")


def _owed(body: ExpenseIn, amount_minor: int, decimals: int, max_participants: int) -> list[Entry]:
    ps = body.participants
    kw = {"max_participants": max_participants}
    if body.split_type == "equal":
        return split_equal(amount_minor, [p.user_id for p in ps], **kw)
    if body.split_type == "shares":
        return split_shares(amount_minor, [(p.user_id, p.shares or 0) for p in ps], **kw)
    if body.split_type == "percentage":
        pcts = []
        for i, p in enumerate(ps):
            try:
                pcts.append((p.user_id, parse_percentage(p.percentage)))
            except SplitError as exc:
                raise invalid(("participants", i, "percentage"), str(exc)) from None
        return split_percentage(amount_minor, pcts, **kw)
    amounts = []
    for i, p in enumerate(ps):
        try:
            amounts.append((p.user_id, parse_amount(p.amount, decimals, allow_zero=True)))
        except MoneyError as exc:
            raise invalid(("participants", i, "amount"), f"amount {exc}") from None
    total = sum(a for _, a in amounts)
    if total != amount_minor:
        raise invalid(
            ("participants",),
            f"exact amounts sum to {format_amount(total, decimals)}, not {format_amount(amount_minor, decimals)}",
        )
    return split_exact(amount_minor, amounts, **kw)


def draft_expense(body: ExpenseIn, group_currency: str, max_participants: int) -> ExpenseDraft:
    """Validate a create/edit payload against the group's currency; 422 on any problem."""
    if body.currency is not None and body.currency != group_currency:
        raise invalid(("currency",), f"currency must be the group's currency {group_currency}")
    decimals = currency_decimals(group_currency)
    try:
        amount_minor = parse_amount(body.amount, decimals)
    except MoneyError as exc:
        raise invalid(("amount",), f"amount {exc}") from None
    ids = [p.user_id for p in body.participants]
    if len(set(ids)) != len(ids):
        raise invalid(("participants",), "participants must be distinct users")
    for i, p in enumerate(body.participants):
        _check_participant_fields(body.split_type, i, p)
    try:
        owed = _owed(body, amount_minor, decimals, max_participants)
    except SplitError as exc:
        raise invalid(("participants",), str(exc)) from None
    return ExpenseDraft(
        description=body.description,
        amount_minor=amount_minor,
        paid_by=body.paid_by,
        split_type=body.split_type,
        owed=tuple(owed),
    )


def render(expense: ExpenseRecord) -> dict[str, Any]:
    """The expense on the wire (schema ExpenseOut): the one place it is rendered."""
    decimals = currency_decimals(expense.currency)
    return {
        "id": str(expense.id),
        "group_id": str(expense.group_id),
        "description": expense.description,
        "amount": format_amount(expense.amount_minor, decimals),
        "currency": expense.currency,
        "paid_by": str(expense.paid_by),
        "split_type": expense.split_type,
        "shares": [{"user_id": str(u), "amount": format_amount(a, decimals)} for u, a in expense.owed],
        "version": expense.version,
        "created_by": str(expense.created_by),
        "created_at": rfc3339(expense.created_at),
        "voided_at": rfc3339(expense.voided_at) if expense.voided_at else None,
    }


def etag(expense: ExpenseRecord) -> str:
    """The entity tag of an expense's current state: it changes with every version and with a void."""
    return f'"{expense.version}-voided"' if expense.voided_at is not None else f'"{expense.version}"'


def check_precondition(expense: ExpenseRecord, if_match: frozenset[str] | None) -> None:
    """If-Match: None (no header) or "*" proceed; otherwise the current ETag must be listed (412)."""
    if if_match is not None and "*" not in if_match and etag(expense) not in if_match:
        raise DomainError("precondition-failed", f"If-Match does not match the current version {etag(expense)}")


def _unchanged(expense: ExpenseRecord, draft: ExpenseDraft) -> bool:
    return expense.voided_at is None and (
        expense.description,
        expense.amount_minor,
        expense.paid_by,
        expense.split_type,
        expense.owed,
    ) == (draft.description, draft.amount_minor, draft.paid_by, draft.split_type, draft.owed)


def _row(expense: ExpenseRecord) -> dict[str, Any]:
    """The expenses row the write functions store (column shares holds [[user_id, owed_minor], ...])."""
    return {
        "id": expense.id,
        "group_id": expense.group_id,
        "description": expense.description,
        "amount_minor": expense.amount_minor,
        "currency": expense.currency,
        "paid_by": expense.paid_by,
        "split_type": expense.split_type,
        "shares": [[u, a] for u, a in expense.owed],
        "version": expense.version,
        "created_by": expense.created_by,
        "created_at": expense.created_at,
        "updated_at": expense.updated_at,
        "voided_at": expense.voided_at,
    }


def _postings(draft: ExpenseDraft) -> dict[str, Any]:
    """The command members that say what to post and who must be a current member (in that order)."""
    return {
        "entries": expense_entries(draft.paid_by, draft.amount_minor, draft.owed),
        "members": [["paid_by", draft.paid_by]] + [["participants", u] for u, _ in draft.owed],
    }


# ---- writes: one command each -------------------------------------------------------------------


async def create(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    claim: Claim,
    group_id: uuid.UUID,
    currency: str,
    draft: ExpenseDraft,
    faults: Faults | None = None,
) -> tuple[Outcome, bytes]:
    """One round trip: the response is rendered first and stored with the key, in the same statement."""
    now = datetime.now(UTC)
    record = ExpenseRecord(
        id=new_id(),
        group_id=group_id,
        description=draft.description,
        amount_minor=draft.amount_minor,
        currency=currency,
        paid_by=draft.paid_by,
        split_type=draft.split_type,
        owed=draft.owed,
        version=1,
        created_by=claim.user_id,
        created_at=now,
        updated_at=now,
        voided_at=None,
    )
    response = orjson.dumps(render(record))
    cmd = {
        "caller": claim.user_id,
        "claim": claim.doc(status=CREATED, response=response),
        "expense": _row(record),
        **_postings(draft),
    }
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
    without, read again. An edit equal to the current version writes nothing (Outcome None)."""
    for _ in range(settings.retry_max_attempts):
        async with engine.connect() as conn:
            current = await get(conn, group_id, expense_id)
        check_precondition(current, if_match)
        if _unchanged(current, draft):
            return await _key_only(pool, settings, claim=claim, group_id=group_id, current=current), current
        now = datetime.now(UTC)
        record = replace(
            current,
            description=draft.description,
            amount_minor=draft.amount_minor,
            paid_by=draft.paid_by,
            split_type=draft.split_type,
            owed=draft.owed,
            version=current.version + 1,
            updated_at=now,
        )
        response = orjson.dumps(render(record))
        cmd = {
            "caller": claim.user_id,
            "claim": claim.doc(status=UPDATED, response=response),
            "expected_version": current.version,
            "expense": _row(record),
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
    nothing is posted (the Outcome is then None). If-Match as for update."""
    for _ in range(settings.retry_max_attempts):
        async with engine.connect() as conn:
            current = await get(conn, group_id, expense_id)
        check_precondition(current, if_match)
        if current.voided_at is not None:
            return await _key_only(pool, settings, claim=claim, group_id=group_id, current=current), current
        now = datetime.now(UTC)
        record = replace(current, voided_at=now, updated_at=now)
        response = orjson.dumps(render(record))
        cmd = {
            "caller": claim.user_id,
            "claim": claim.doc(status=UPDATED, response=response),
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
    "id, group_id, description, amount_minor, currency, paid_by, split_type, shares, version,"
    " created_by, created_at, updated_at, voided_at"
)


def _record(row: Any) -> ExpenseRecord:
    return ExpenseRecord(
        id=row.id,
        group_id=row.group_id,
        description=row.description,
        amount_minor=row.amount_minor,
        currency=row.currency,
        paid_by=row.paid_by,
        split_type=row.split_type,
        owed=tuple((uuid.UUID(u), int(a)) for u, a in row.shares),
        version=row.version,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        voided_at=row.voided_at,
    )


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


async def list_page(
    conn: AsyncConnection, group_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[ExpenseRecord]:
    where = "AND (created_at, id) < (:after_at, :after_id)" if after else ""
    rows = await conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM expenses WHERE group_id = :g {where}"
            " ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        {"g": group_id, "limit": limit, **keyset_params(after)},
    )
    return [_record(r) for r in rows]
