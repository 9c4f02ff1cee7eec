"""Expenses: validate a payload into owed amounts (pure), then create, edit and void.

Services never commit; the router runs them inside one transaction (app.tx / app.idempotency).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.api.pagination import keyset_params
from app.api.problems import ProblemError, not_found, validation_error
from app.core.money import MoneyError, currency_decimals, format_amount, parse_amount
from app.core.records import Entry, ExpenseRecord, rfc3339
from app.core.splits import SplitError, parse_percentage, split_equal, split_exact, split_percentage, split_shares
from app.domain.groups import GroupRecord
from app.domain.schemas import ExpenseIn, ParticipantIn
from app.infra.config import Settings
from app.infra.ids import new_id
from app.infra.testhooks import Faults
from app.ledger import service as ledger

_FIELD_FOR_SPLIT = {"equal": None, "percentage": "percentage", "exact": "amount", "shares": "shares"}
_SPLIT_FIELDS = ("percentage", "amount", "shares")


@dataclass(frozen=True, slots=True)
class ExpenseDraft:
    description: str
    amount_minor: int
    paid_by: uuid.UUID
    split_type: str
    owed: list[Entry]  # ascending user_id, sums to amount_minor

    @property
    def user_ids(self) -> set[uuid.UUID]:
        return {self.paid_by, *(user_id for user_id, _ in self.owed)}


# ---- pure: payload → draft ---------------------------------------------------------------------


def _check_participant_fields(split_type: str, index: int, p: ParticipantIn) -> None:
    wanted = _FIELD_FOR_SPLIT[split_type]
    for field in _SPLIT_FIELDS:
        given = getattr(p, field) is not None
        if given and field != wanted:
            raise validation_error(
                ["body", "participants", index, field], f"{field} is not allowed with split_type {split_type}"
            )
        if not given and field == wanted:
            raise validation_error(["body", "participants", index, field], f"{field} is required for {split_type}")


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
                raise validation_error(["body", "participants", i, "percentage"], str(exc)) from None
        return split_percentage(amount_minor, pcts, **kw)
    amounts = []
    for i, p in enumerate(ps):
        try:
            amounts.append((p.user_id, parse_amount(p.amount, decimals, allow_zero=True)))
        except MoneyError as exc:
            raise validation_error(["body", "participants", i, "amount"], f"amount {exc}") from None
    total = sum(a for _, a in amounts)
    if total != amount_minor:
        raise validation_error(
            ["body", "participants"],
            f"exact amounts sum to {format_amount(total, decimals)}, not {format_amount(amount_minor, decimals)}",
        )
    return split_exact(amount_minor, amounts, **kw)


def draft_expense(body: ExpenseIn, group_currency: str, max_participants: int) -> ExpenseDraft:
    """Validate a create/edit payload against the group's currency; 422 on any problem."""
    if body.currency is not None and body.currency != group_currency:
        raise validation_error(["body", "currency"], f"currency must be the group's currency {group_currency}")
    decimals = currency_decimals(group_currency)
    try:
        amount_minor = parse_amount(body.amount, decimals)
    except MoneyError as exc:
        raise validation_error(["body", "amount"], f"amount {exc}") from None
    ids = [p.user_id for p in body.participants]
    if len(set(ids)) != len(ids):
        raise validation_error(["body", "participants"], "participants must be distinct users")
    for i, p in enumerate(body.participants):
        _check_participant_fields(body.split_type, i, p)
    try:
        owed = _owed(body, amount_minor, decimals, max_participants)
    except SplitError as exc:
        raise validation_error(["body", "participants"], str(exc)) from None
    return ExpenseDraft(body.description, amount_minor, body.paid_by, body.split_type, owed)


def render(expense: ExpenseRecord) -> dict[str, Any]:
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


# ---- database ---------------------------------------------------------------------------------

_COLUMNS = (
    "id, group_id, description, amount_minor, currency, paid_by, split_type, shares, version,"
    " created_by, created_at, voided_at"
)


def _record(row: Any) -> ExpenseRecord:
    owed = [(uuid.UUID(u), int(a)) for u, a in row.shares]
    return ExpenseRecord(
        row.id,
        row.group_id,
        row.description,
        row.amount_minor,
        row.currency,
        row.paid_by,
        row.split_type,
        owed,
        row.version,
        row.created_by,
        row.created_at,
        row.voided_at,
    )


async def create(
    pool: asyncpg.Pool,
    settings: Settings,
    claim: ledger.Claim,
    group_id: uuid.UUID,
    currency: str,
    draft: ExpenseDraft,
    creator: uuid.UUID,
    faults: Faults | None = None,
) -> ledger.Written:
    """One round trip: the response is rendered first and stored with the key, in the same statement."""
    record = ExpenseRecord(
        new_id(),
        group_id,
        draft.description,
        draft.amount_minor,
        currency,
        draft.paid_by,
        draft.split_type,
        draft.owed,
        1,
        creator,
        datetime.now(UTC),
        None,
    )
    response = orjson.dumps(render(record))
    return await ledger.create_expense(pool, settings, claim, record, response, faults)


async def get(
    conn: AsyncConnection, group_id: uuid.UUID, expense_id: uuid.UUID, *, lock: bool = False
) -> ExpenseRecord:
    suffix = " FOR UPDATE" if lock else ""
    row = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM expenses WHERE id = :id AND group_id = :g{suffix}"),
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


def _not_editable(detail: str) -> ProblemError:
    return ProblemError(409, "expense-not-editable", detail)


async def _reverse_current(conn: AsyncConnection, expense: ExpenseRecord, nets: dict[uuid.UUID, int]) -> None:
    old = await ledger.expense_entries_of(conn, expense.id, expense.version)
    if any(user_id not in nets for user_id, _ in old):
        raise _not_editable("the expense involves someone who is no longer a member")
    await ledger.post(
        conn, expense.group_id, ledger.negate(old), ledger.Source("reversal", expense.id, expense.version)
    )


def _old_user_ids(expense: ExpenseRecord) -> set[uuid.UUID]:
    return {expense.paid_by, *(u for u, _ in expense.owed)}


async def update(
    conn: AsyncConnection, group: GroupRecord, caller: uuid.UUID, expense_id: uuid.UUID, draft: ExpenseDraft
) -> ExpenseRecord:
    """Reverse the current version's entries and post the new ones; version + 1."""
    expense = await get(conn, group.id, expense_id, lock=True)
    if expense.voided_at is not None:
        raise _not_editable("a voided expense cannot be edited")
    nets = await ledger.lock_balances(conn, group.id, caller, _old_user_ids(expense) | draft.user_ids)
    if not _old_user_ids(expense) <= nets.keys():
        raise _not_editable("the expense involves someone who is no longer a member")
    if not draft.user_ids <= nets.keys():
        missing = sorted(str(u) for u in draft.user_ids - nets.keys())
        raise validation_error(["body", "participants"], f"not current members: {', '.join(missing)}")
    await _reverse_current(conn, expense, nets)
    version = expense.version + 1
    await conn.execute(
        text(
            "UPDATE expenses SET description = :d, amount_minor = :a, paid_by = :p, split_type = :s,"
            " shares = CAST(:shares AS jsonb), version = :v, updated_at = now() WHERE id = :id"
        ),
        {
            "d": draft.description,
            "a": draft.amount_minor,
            "p": draft.paid_by,
            "s": draft.split_type,
            "shares": ledger.shares_json(draft.owed),
            "v": version,
            "id": expense.id,
        },
    )
    entries = ledger.expense_entries(draft.paid_by, draft.amount_minor, draft.owed)
    await ledger.post(conn, group.id, entries, ledger.Source("expense", expense.id, version))
    return ExpenseRecord(
        expense.id,
        group.id,
        draft.description,
        draft.amount_minor,
        expense.currency,
        draft.paid_by,
        draft.split_type,
        draft.owed,
        version,
        expense.created_by,
        expense.created_at,
        None,
    )


async def void(conn: AsyncConnection, group: GroupRecord, caller: uuid.UUID, expense_id: uuid.UUID) -> ExpenseRecord:
    """Post the reversal and set voided_at; voiding a voided expense returns it and posts nothing."""
    expense = await get(conn, group.id, expense_id, lock=True)
    if expense.voided_at is not None:
        return expense
    nets = await ledger.lock_balances(conn, group.id, caller, _old_user_ids(expense))
    if not _old_user_ids(expense) <= nets.keys():
        raise _not_editable("the expense involves someone who is no longer a member")
    await _reverse_current(conn, expense, nets)
    voided_at = (
        await conn.execute(
            text("UPDATE expenses SET voided_at = now(), updated_at = now() WHERE id = :id RETURNING voided_at"),
            {"id": expense.id},
        )
    ).scalar_one()
    return replace(expense, voided_at=voided_at)
