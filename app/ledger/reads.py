"""Reads of the ledger: balances (nets), and the operator's drift check. Never writes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.ledger import audit
from app.ledger.postings import check_nets


async def read_nets(conn: AsyncConnection, group_id: uuid.UUID) -> dict[uuid.UUID, int]:
    rows = await conn.execute(
        text("SELECT user_id, net_minor FROM member_balances WHERE group_id = :g ORDER BY user_id"), {"g": group_id}
    )
    nets = {row.user_id: row.net_minor for row in rows}
    check_nets(nets)
    return nets


async def read_own_nets(
    conn: AsyncConnection, user_id: uuid.UUID, group_ids: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """One member's net in each of the given groups (from the balance rows: O(groups), no ledger scan)."""
    if not group_ids:
        return {}
    rows = await conn.execute(
        text("SELECT group_id, net_minor FROM member_balances WHERE user_id = :u AND group_id = ANY(:gs)"),
        {"u": user_id, "gs": group_ids},
    )
    return {row.group_id: row.net_minor for row in rows}


@dataclass(frozen=True, slots=True, kw_only=True)
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
    zero, entries that cite a group, user, expense or settlement that does not exist, and entries that
    differ from what the expense version or settlement they cite says (app.ledger.audit)."""
    drift = [
        Drift(
            group_id=r.group_id,
            user_id=r.user_id,
            balance_minor=r.balance_minor,
            ledger_minor=r.ledger_minor,
            what="balance differs from ledger",
        )
        for r in await conn.execute(_DRIFT)
    ]
    drift += [
        Drift(
            group_id=r.group_id,
            user_id=None,
            balance_minor=0,
            ledger_minor=r.total,
            what="posting does not sum to zero",
        )
        for r in await conn.execute(_UNBALANCED)
    ]
    drift += [
        Drift(
            group_id=r.group_id,
            user_id=r.user_id,
            balance_minor=0,
            ledger_minor=r.total,
            what=f"ledger entries cite a missing {r.missing}",
        )
        for r in await conn.execute(_ORPHANED)
    ]
    for query in audit.QUERIES:  # the ledger against the expenses and settlements it cites
        drift += [
            Drift(
                group_id=r.group_id,
                user_id=r.user_id,
                balance_minor=int(r.expected_minor),
                ledger_minor=int(r.posted_minor),
                what=r.what,
            )
            for r in await conn.execute(query)
        ]
    return drift
