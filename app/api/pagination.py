"""Opaque keyset cursors: newest first, never OFFSET. A cursor is bound to the list that issued it.

A cursor carries its position ((created_at, id), or a ledger sequence number) and a digest of its
list's scope: the list, the group (or user) and the filters. A cursor presented to any other list,
or with other filters, is a 400 `invalid-cursor`, as is anything this API did not issue.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Query

from app.core.errors import DomainError

MAX_CURSOR_LENGTH = 200
PAGE_LIMIT_DEFAULT = 50  # the contract's page bounds
PAGE_LIMIT_MAX = 200
_LIMIT_HELP = f"Page size, 1..{PAGE_LIMIT_MAX} (default {PAGE_LIMIT_DEFAULT})."
_SCOPE_CHARS = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class PageParams:
    limit: int
    cursor: str | None


def scope_of(*parts: object) -> str:
    """A list's scope: its name, owner and filters, as a short digest carried by its cursors."""
    joined = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(joined.encode()).hexdigest()[:_SCOPE_CHARS]


def _encode(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def encode_time_cursor(scope: str, created_at: datetime, id_: UUID) -> str:
    return _encode(f"t|{scope}|{created_at.isoformat()}|{id_}")


def encode_seq_cursor(scope: str, seq: int) -> str:
    return _encode(f"s|{scope}|{seq}")


def _bad_cursor() -> DomainError:
    return DomainError("invalid-cursor", "cursor was not issued by this list with these filters")


def _fields(cursor: str, kind: str, scope: str, count: int) -> list[str]:
    """The cursor's position fields, if it is a `kind` cursor of this scope; else 400."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise _bad_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_cursor() from None
    parts = raw.split("|")
    if len(parts) != 2 + count or parts[0] != kind or parts[1] != scope:
        raise _bad_cursor()
    return parts[2:]


def require_time_cursor(params: PageParams, scope: str) -> tuple[datetime, UUID] | None:
    if params.cursor is None:
        return None
    at, id_ = _fields(params.cursor, "t", scope, 2)
    try:
        created_at = datetime.fromisoformat(at)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return created_at, UUID(id_)
    except ValueError:
        raise _bad_cursor() from None


def require_seq_cursor(params: PageParams, scope: str) -> int | None:
    if params.cursor is None:
        return None
    (seq,) = _fields(params.cursor, "s", scope, 1)
    if not (seq.isascii() and seq.isdigit() and len(seq) <= 19):
        raise _bad_cursor()
    return int(seq)


async def page_params(
    limit: Annotated[int | None, Query(ge=1, le=PAGE_LIMIT_MAX, description=_LIMIT_HELP)] = None,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=MAX_CURSOR_LENGTH, description="Opaque cursor from next_cursor.")
    ] = None,
) -> PageParams:
    return PageParams(limit=PAGE_LIMIT_DEFAULT if limit is None else limit, cursor=cursor)


PageDep = Annotated[PageParams, Depends(page_params)]
