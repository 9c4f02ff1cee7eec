"""The only writer of ledger entries and member balances.

Every posting is a set of (user_id, amount_minor) entries that sums to zero, checked here before it
is sent and again by the database (quits_post). The SQL side lives in migrations b2d4f6a8c002 (the
write functions) and c3e5a7b9d003 (balance slots, which replaced some of them):

- `create_expense` / `create_settlement` (the hot path) are one statement in autocommit: claim the
  Idempotency-Key with the response rendered by the app, check membership, lock balance rows in
  ascending (user_id, slot) order, insert, post, move the balances. One round trip, row locks held
  only for the statement's own time. A member's net is split over balance slots (migration
  c3e5a7b9d003): an expense locks one random slot per user, a settlement all slots of both users.
- `lock_balances` + `post` serve the multi-statement writes (edit, void) inside a transaction the
  caller owns (app.tx.run_transaction): lock all slots first, re-check under the lock, then post.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import asyncpg
import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from app.api.problems import ProblemError, not_found, validation_error
from app.core.money import currency_decimals, format_amount
from app.core.records import Entry, ExpenseRecord, SettlementRecord
from app.infra.config import Settings
from app.infra.testhooks import Faults
from app.infra.tx import run_statement, sqlstate

Kind = Literal["expense", "reversal", "settlement"]


class LedgerInvariantError(AssertionError):
    """A posting or a balance read broke conservation: never expected, always a bug."""


@dataclass(frozen=True, slots=True)
class Payment:
    from_user_id: uuid.UUID
    to_user_id: uuid.UUID
    amount_minor: int


# ---- pure leaves -------------------------------------------------------------------------------


def expense_entries(paid_by: uuid.UUID, amount_minor: int, owed: Sequence[Entry]) -> list[Entry]:
    """Payer +amount, each participant -owed (zero owed posts nothing)."""
    entries = [(paid_by, amount_minor)] + [(user_id, -part) for user_id, part in owed if part != 0]
    check_balanced(entries)
    return entries


def settlement_entries(from_user_id: uuid.UUID, to_user_id: uuid.UUID, amount_minor: int) -> list[Entry]:
    entries = [(from_user_id, amount_minor), (to_user_id, -amount_minor)]
    check_balanced(entries)
    return entries


def shares_json(owed: Sequence[Entry]) -> str:
    """An expense's owed amounts as stored in expenses.shares: [[user_id, owed_minor], ...]."""
    return orjson.dumps([[str(u), a] for u, a in owed]).decode()


def negate(entries: Iterable[Entry]) -> list[Entry]:
    return [(user_id, -amount) for user_id, amount in entries]


def check_balanced(entries: Sequence[Entry]) -> None:
    if not entries or sum(amount for _, amount in entries) != 0:
        raise LedgerInvariantError(f"posting does not sum to zero: {entries!r}")


def check_nets(nets: Mapping[uuid.UUID, int]) -> None:
    if sum(nets.values()) != 0:
        raise LedgerInvariantError(f"group nets do not sum to zero: {dict(nets)!r}")


def suggest_payments(nets: Mapping[uuid.UUID, int]) -> list[Payment]:
    """Greedy: the largest debtor pays the largest creditor; ties by ascending user_id.

    Each payment zeroes at least one side, so n members with a non-zero net need at most n-1.
    """
    check_nets(nets)
    debts = {u: -n for u, n in nets.items() if n < 0}
    credits = {u: n for u, n in nets.items() if n > 0}
    payments: list[Payment] = []
    while debts and credits:
        debtor = min(debts, key=lambda u: (-debts[u], str(u)))
        creditor = min(credits, key=lambda u: (-credits[u], str(u)))
        amount = min(debts[debtor], credits[creditor])
        payments.append(Payment(debtor, creditor, amount))
        for side, user in ((debts, debtor), (credits, creditor)):
            side[user] -= amount
            if side[user] == 0:
                del side[user]
    assert not debts and not credits, "nets summing to zero leave nothing unpaid"
    return payments


# ---- database ---------------------------------------------------------------------------------

_LOCK = text("SELECT user_id, net_minor FROM quits_lock_members(:group_id, :caller, :user_ids)").bindparams(
    bindparam("user_ids", type_=ARRAY(UUID(as_uuid=True)))
)


async def lock_balances(
    conn: AsyncConnection, group_id: uuid.UUID, caller: uuid.UUID, user_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Lock every balance slot of the given users in ascending (user_id, slot) order (404 unless the
    caller is a member); return the nets of those who are current members: a missing key means "not a
    member"."""
    ids = sorted(set(user_ids))
    rows = await conn.execute(_LOCK, {"group_id": group_id, "caller": caller, "user_ids": ids})
    return {row.user_id: row.net_minor for row in rows}


_POST = text(
    "SELECT quits_post(:group_id, :user_ids, :amounts, :kind, :expense_id, :expense_version, :settlement_id, 0)"
).bindparams(
    bindparam("user_ids", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("amounts", type_=ARRAY(BIGINT)),
)


@dataclass(frozen=True, slots=True)
class Source:
    kind: Kind
    expense_id: uuid.UUID | None = None
    expense_version: int | None = None
    settlement_id: uuid.UUID | None = None


async def post(conn: AsyncConnection, group_id: uuid.UUID, entries: Sequence[Entry], source: Source) -> None:
    """Insert one balanced posting and apply it to slot 0 of the (already locked, all slots) balance rows.

    The SQL function quits_post (migration c3e5a7b9d003) checks the sum and the balance rows again."""
    check_balanced(entries)
    params = {
        "group_id": group_id,
        "kind": source.kind,
        "expense_id": source.expense_id,
        "expense_version": source.expense_version,
        "settlement_id": source.settlement_id,
        "user_ids": [user_id for user_id, _ in entries],
        "amounts": [amount for _, amount in entries],
    }
    await conn.execute(_POST, params)


# ---- one-statement writes (the hot path) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """The caller's Idempotency-Key (None: not idempotent), the request fingerprint, the key's TTL."""

    user_id: uuid.UUID
    key: str | None
    fingerprint: bytes
    ttl_hours: int

    def sql_args(self, response: bytes) -> tuple[object, ...]:
        """The first five arguments of both write functions: who, the key, and what to store with it."""
        return (self.user_id, self.key, self.fingerprint, self.ttl_hours, response.decode())


@dataclass(frozen=True, slots=True)
class Written:
    status_code: int
    body: bytes
    replayed: bool


def problem_from_db(exc: BaseException, decimals: int | None = None) -> ProblemError | None:
    """Map the write functions' QU-class errors to problem details; None for any other error."""
    code = sqlstate(exc)
    if code is None or not code.startswith("QU"):
        return None
    message = str(getattr(exc, "message", None) or exc)
    detail = str(getattr(exc, "detail", None) or "")
    if code == "QU404":
        return not_found("group")
    if code == "QU422":
        field, _, _ = detail.partition(":")
        return validation_error(["body", field or "participants"], message)
    if code == "QU409":
        return ProblemError(409, "idempotency-key-in-use", message)
    if code == "QU421":
        return ProblemError(422, "idempotency-key-reused", message)
    if code == "QU423" and decimals is not None and detail.isdigit():
        return exceeds_balance(int(detail), decimals)
    if code == "QU423":
        return ProblemError(422, "settlement-exceeds-balance", message)
    raise LedgerInvariantError(message)


def exceeds_balance(limit_minor: int, decimals: int) -> ProblemError:
    shown = format_amount(max(limit_minor, 0), decimals)
    return ProblemError(
        422,
        "settlement-exceeds-balance",
        f"amount exceeds what the payer owes or the payee is owed (at most {shown})",
        errors=[{"loc": ["body", "amount"], "msg": f"must be at most {shown}"}],
    )


async def _call(
    pool: asyncpg.Pool, settings: Settings, sql: str, args: Sequence[object], faults: Faults | None, decimals: int
) -> Written:
    """One statement in autocommit (a whole transaction in one round trip), retried on conflicts.
    With test faults, the statement and the faults share one explicit transaction."""

    async def work(conn: asyncpg.Connection) -> Written:
        try:
            if faults is None:
                row = await conn.fetchrow(sql, *args)
            else:
                async with conn.transaction():
                    row = await conn.fetchrow(sql, *args)
                    await faults.fire(conn)
        except asyncpg.PostgresError as exc:
            problem = problem_from_db(exc, decimals)
            if problem is not None:
                raise problem from None
            raise
        assert row is not None
        return Written(row["status"], row["body"].encode(), row["replayed"])

    return await run_statement(pool, settings, work)


_CREATE_EXPENSE = (
    "SELECT status, body, replayed FROM quits_create_expense("
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14, $15, $16, $17)"
)


async def create_expense(
    pool: asyncpg.Pool,
    settings: Settings,
    claim: Claim,
    expense: ExpenseRecord,
    response: bytes,
    faults: Faults | None = None,
) -> Written:
    entries = expense_entries(expense.paid_by, expense.amount_minor, expense.owed)
    shares = shares_json(expense.owed)
    args = (
        *claim.sql_args(response),
        expense.id,
        expense.group_id,
        expense.description,
        expense.amount_minor,
        expense.currency,
        expense.paid_by,
        expense.split_type,
        shares,
        expense.created_at,
        [u for u, _ in entries],
        [a for _, a in entries],
        [u for u, _ in expense.owed],
    )
    return await _call(pool, settings, _CREATE_EXPENSE, args, faults, currency_decimals(expense.currency))


_CREATE_SETTLEMENT = (
    "SELECT status, body, replayed FROM quits_create_settlement($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
)


async def create_settlement(
    pool: asyncpg.Pool,
    settings: Settings,
    claim: Claim,
    s: SettlementRecord,
    response: bytes,
    faults: Faults | None = None,
) -> Written:
    check_balanced(settlement_entries(s.from_user_id, s.to_user_id, s.amount_minor))
    args = (
        *claim.sql_args(response),
        s.id,
        s.group_id,
        s.from_user_id,
        s.to_user_id,
        s.amount_minor,
        s.currency,
        s.note,
        s.created_at,
    )
    return await _call(pool, settings, _CREATE_SETTLEMENT, args, faults, currency_decimals(s.currency))


async def expense_entries_of(conn: AsyncConnection, expense_id: uuid.UUID, version: int) -> list[Entry]:
    rows = await conn.execute(
        text(
            "SELECT user_id, amount_minor FROM ledger_entries"
            " WHERE expense_id = :e AND expense_version = :v AND kind = 'expense' ORDER BY seq"
        ),
        {"e": expense_id, "v": version},
    )
    entries = [(row.user_id, row.amount_minor) for row in rows]
    check_balanced(entries)
    return entries


async def read_nets(conn: AsyncConnection, group_id: uuid.UUID) -> dict[uuid.UUID, int]:
    rows = await conn.execute(
        text("SELECT user_id, net_minor FROM member_balances WHERE group_id = :g ORDER BY user_id"), {"g": group_id}
    )
    nets = {row.user_id: row.net_minor for row in rows}
    check_nets(nets)
    return nets


@dataclass(frozen=True, slots=True)
class Drift:
    group_id: uuid.UUID
    user_id: uuid.UUID | None
    balance_minor: int
    ledger_minor: int
    what: str


_DRIFT = text(
    """
    SELECT coalesce(m.group_id, l.group_id) AS group_id, coalesce(m.user_id, l.user_id) AS user_id,
           coalesce(m.net_minor, 0) AS balance_minor, coalesce(l.total, 0) AS ledger_minor
    FROM member_balances m
    FULL JOIN (SELECT group_id, user_id, sum(amount_minor) AS total FROM ledger_entries GROUP BY 1, 2) l
      ON l.group_id = m.group_id AND l.user_id = m.user_id
    WHERE coalesce(m.net_minor, 0) <> coalesce(l.total, 0)
    """
)
_UNBALANCED = text(
    "SELECT group_id, sum(amount_minor) AS total FROM ledger_entries GROUP BY group_id, posting_id"
    " HAVING sum(amount_minor) <> 0"
)


# Ledger entries have no foreign keys (migration d4f6b8c0e005): an entry citing a missing row is drift.
_ORPHANED = text(
    """
    SELECT l.group_id, l.user_id, sum(l.amount_minor) AS total,
           concat_ws(', ', CASE WHEN g.id IS NULL THEN 'group' END, CASE WHEN u.id IS NULL THEN 'user' END,
                     CASE WHEN l.expense_id IS NOT NULL AND e.id IS NULL THEN 'expense' END,
                     CASE WHEN l.settlement_id IS NOT NULL AND s.id IS NULL THEN 'settlement' END) AS missing
    FROM ledger_entries l
    LEFT JOIN groups g ON g.id = l.group_id
    LEFT JOIN users u ON u.id = l.user_id
    LEFT JOIN expenses e ON e.id = l.expense_id
    LEFT JOIN settlements s ON s.id = l.settlement_id
    WHERE g.id IS NULL OR u.id IS NULL OR (l.expense_id IS NOT NULL AND e.id IS NULL)
       OR (l.settlement_id IS NOT NULL AND s.id IS NULL)
    GROUP BY 1, 2, 4
    """
)


async def find_drift(conn: AsyncConnection) -> list[Drift]:
    """Recompute every balance from the ledger; report rows that differ, postings that do not sum to
    zero and entries that cite a group, user, expense or settlement that does not exist."""
    drift = [
        Drift(r.group_id, r.user_id, r.balance_minor, r.ledger_minor, "balance differs from ledger")
        for r in await conn.execute(_DRIFT)
    ]
    drift += [
        Drift(r.group_id, None, 0, r.total, "posting does not sum to zero") for r in await conn.execute(_UNBALANCED)
    ]
    drift += [
        Drift(r.group_id, r.user_id, 0, r.total, f"ledger entries cite a missing {r.missing}")
        for r in await conn.execute(_ORPHANED)
    ]
    return drift
