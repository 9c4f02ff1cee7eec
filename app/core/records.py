"""Immutable values for the ledger's events, shared by the services, the ledger and the renderers.

Each record's fields are its table's columns (app.models), so a record travels to the write
functions as one jsonb row (jsonb_populate_record) and back from a SELECT as one row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

Entry = tuple[uuid.UUID, int]  # (user_id, amount_minor)


def rfc3339(ts: datetime) -> str:
    """A timestamp on the wire: RFC 3339 in UTC with a Z suffix."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
