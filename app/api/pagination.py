"""Opaque keyset cursors: newest first, never OFFSET."""

from __future__ import annotations

import base64
import binascii
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


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position after which the next page starts: (created_at, id) or a sequence number."""

    created_at: datetime | None
    id: UUID | None
    seq: int | None


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    after: Cursor | None


def encode_time_cursor(created_at: datetime, id_: UUID) -> str:
    raw = f"t|{created_at.isoformat()}|{id_}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def encode_seq_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s|{seq}".encode()).decode().rstrip("=")


def _bad_cursor() -> DomainError:
    return DomainError("invalid-cursor", "cursor is not a cursor this API issued")


def decode_cursor(text: str) -> Cursor:
    if len(text) > MAX_CURSOR_LENGTH:
        raise _bad_cursor()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        kind, *rest = raw.split("|")
        if kind == "t" and len(rest) == 2:
            created_at = datetime.fromisoformat(rest[0])
            if created_at.tzinfo is None:
                raise ValueError("naive timestamp")
            return Cursor(created_at=created_at, id=UUID(rest[1]), seq=None)
        if kind == "s" and len(rest) == 1 and rest[0].isascii() and rest[0].isdigit():
            return Cursor(created_at=None, id=None, seq=int(rest[0]))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise _bad_cursor()


async def page_params(
    limit: Annotated[int | None, Query(ge=1, le=PAGE_LIMIT_MAX, description=_LIMIT_HELP)] = None,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=MAX_CURSOR_LENGTH, description="Opaque cursor from next_cursor.")
    ] = None,
) -> PageParams:
    size = PAGE_LIMIT_DEFAULT if limit is None else limit
    return PageParams(limit=size, after=decode_cursor(cursor) if cursor is not None else None)


PageDep = Annotated[PageParams, Depends(page_params)]


def require_time_cursor(params: PageParams) -> tuple[datetime, UUID] | None:
    if params.after is None:
        return None
    if params.after.created_at is None or params.after.id is None:
        raise _bad_cursor()
    return params.after.created_at, params.after.id


def require_seq_cursor(params: PageParams) -> int | None:
    if params.after is None:
        return None
    if params.after.seq is None:
        raise _bad_cursor()
    return params.after.seq
