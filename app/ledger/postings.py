"""Pure ledger rules: postings that sum to zero, and the settle-up suggestion. No I/O."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.core.records import Entry


class LedgerInvariantError(AssertionError):
    """A posting or a balance read broke conservation: never expected, always a bug."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Payment:
    from_user_id: uuid.UUID
    to_user_id: uuid.UUID
    amount_minor: int


def expense_entries(paid_by: uuid.UUID, amount_minor: int, owed: Sequence[Entry]) -> list[Entry]:
    """Payer +amount, each participant -owed (zero owed posts nothing)."""
    entries = [(paid_by, amount_minor)] + [(user_id, -part) for user_id, part in owed if part != 0]
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
        payments.append(Payment(from_user_id=debtor, to_user_id=creditor, amount_minor=amount))
        for side, user in ((debts, debtor), (credits, creditor)):
            side[user] -= amount
            if side[user] == 0:
                del side[user]
    assert not debts and not credits, "nets summing to zero leave nothing unpaid"
    return payments
