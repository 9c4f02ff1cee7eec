"""Small immutable values shared by every layer: a posting entry, and the wire form of a timestamp.

Each resource's record lives with its service (app.domain.<resource>): its fields are its table's
columns (app.models), so a record travels to the write functions as one jsonb row.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

Entry = tuple[uuid.UUID, int]  # (user_id, amount_minor)


def rfc3339(ts: datetime) -> str:
    """A timestamp on the wire: RFC 3339 in UTC with a Z suffix. (The database's timestamps are in UTC
    already: every record an export streams skips the conversion.)"""
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    return ts.isoformat()[:-6] + "Z"
