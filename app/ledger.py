"""The only writer of ledger entries and member balances.

Every posting is a set of (user_id, amount_minor) entries that sums to zero. A posting inserts its
entries and moves the members' balance rows in one statement, inside the caller's transaction,
after the caller locked those balance rows with `lock_balances` (ascending user_id order).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

Entry = tuple[uuid.UUID, int]
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

_LOCK = text(
    """
    SELECT user_id, net_minor FROM memberships
    WHERE group_id = :group_id AND user_id = ANY(:user_ids)
    ORDER BY user_id
    FOR UPDATE
    """
).bindparams(bindparam("user_ids", type_=ARRAY(UUID(as_uuid=True))))


async def lock_balances(
    conn: AsyncConnection, group_id: uuid.UUID, user_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Lock the balance rows of the given users in ascending user_id order; return the nets of
    those who are current members (a missing key means "not a member" as of the lock)."""
    ids = sorted(set(user_ids))
    rows = await conn.execute(_LOCK, {"group_id": group_id, "user_ids": ids})
    return {row.user_id: row.net_minor for row in rows}


_POST = text(
    """
    WITH inserted AS (
        INSERT INTO ledger_entries
            (id, posting_id, group_id, user_id, amount_minor, kind, expense_id, expense_version, settlement_id)
        SELECT gen_random_uuid(), :posting_id, :group_id, t.user_id, t.amount_minor, :kind,
               :expense_id, :expense_version, :settlement_id
        FROM unnest(:user_ids, :amounts) WITH ORDINALITY AS t(user_id, amount_minor, n)
        ORDER BY t.n
        RETURNING user_id, amount_minor
    ), deltas AS (
        SELECT user_id, sum(amount_minor) AS delta FROM inserted GROUP BY user_id
    )
    UPDATE memberships m SET net_minor = m.net_minor + deltas.delta
    FROM deltas
    WHERE m.group_id = :group_id AND m.user_id = deltas.user_id
    RETURNING m.user_id
    """
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
    """Insert one balanced posting and apply it to the (already locked) balance rows."""
    check_balanced(entries)
    params = {
        "posting_id": uuid.uuid4(),
        "group_id": group_id,
        "kind": source.kind,
        "expense_id": source.expense_id,
        "expense_version": source.expense_version,
        "settlement_id": source.settlement_id,
        "user_ids": [user_id for user_id, _ in entries],
        "amounts": [amount for _, amount in entries],
    }
    updated = (await conn.execute(_POST, params)).all()
    if len(updated) != len({user_id for user_id, _ in entries}):
        raise LedgerInvariantError("a posting touched a user without a balance row")


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
        text("SELECT user_id, net_minor FROM memberships WHERE group_id = :g ORDER BY user_id"), {"g": group_id}
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
    FROM memberships m
    FULL JOIN (SELECT group_id, user_id, sum(amount_minor) AS total FROM ledger_entries GROUP BY 1, 2) l
      ON l.group_id = m.group_id AND l.user_id = m.user_id
    WHERE coalesce(m.net_minor, 0) <> coalesce(l.total, 0)
    """
)
_UNBALANCED = text(
    "SELECT group_id, sum(amount_minor) AS total FROM ledger_entries GROUP BY group_id, posting_id"
    " HAVING sum(amount_minor) <> 0"
)


async def find_drift(conn: AsyncConnection) -> list[Drift]:
    """Recompute every balance from the ledger; report rows that differ and postings that do not sum to zero."""
    drift = [
        Drift(r.group_id, r.user_id, r.balance_minor, r.ledger_minor, "balance differs from ledger")
        for r in await conn.execute(_DRIFT)
    ]
    drift += [
        Drift(r.group_id, None, 0, r.total, "posting does not sum to zero") for r in await conn.execute(_UNBALANCED)
    ]
    return drift
