"""Immutable values for the ledger's events, shared by the services, the ledger and the renderers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

Entry = tuple[uuid.UUID, int]  # (user_id, amount_minor)


def rfc3339(ts: datetime) -> str:
    """A timestamp on the wire: RFC 3339 in UTC with a Z suffix."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ExpenseRecord:
    id: uuid.UUID
    group_id: uuid.UUID
    description: str
    amount_minor: int
    currency: str
    paid_by: uuid.UUID
    split_type: str
    owed: list[Entry]  # ascending user_id, sums to amount_minor
    version: int
    created_by: uuid.UUID
    created_at: datetime
    voided_at: datetime | None


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
