"""Idempotency-Key: parsing, request fingerprints, and the purge of expired keys.

The key itself is claimed by the write, in the same statement and transaction (the SQL function
quits_claim_key, called by the ledger's write functions): it inserts (user_id, key, fingerprint,
response); a concurrent request with the same key waits on the primary key until the first commits
(then replays its stored result, or 422 for another request) or rolls back (then claims it itself);
a wait past lock_timeout is a 409. Only committed requests are remembered.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.errors import DomainError
from app.infra.config import Settings

logger = logging.getLogger("quits.idempotency")

MAX_KEY_LENGTH = 255
HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


# ---- pure leaves -------------------------------------------------------------------------------


def _bad_key(detail: str) -> DomainError:
    return DomainError("invalid-idempotency-key", detail)


def _unquote_sf_string(value: str) -> str:
    """RFC 8941 sf-string: DQUOTE *( unescaped / "\\" ( DQUOTE / "\\" ) ) DQUOTE."""
    if len(value) < 2 or not value.endswith('"'):
        raise _bad_key("Idempotency-Key quoted string is not terminated")
    out: list[str] = []
    chars = iter(value[1:-1])
    for ch in chars:
        if ch == "\\":
            escaped = next(chars, "")
            if escaped not in ('"', "\\"):
                raise _bad_key("Idempotency-Key has an invalid escape")
            out.append(escaped)
        elif ch == '"':
            raise _bad_key("Idempotency-Key has an unescaped quote")
        else:
            out.append(ch)
    return "".join(out)


def parse_key(raw: str | None) -> str | None:
    """None when the header is absent; 400 unless 1..255 printable ASCII characters."""
    if raw is None:
        return None
    value = raw.strip(" \t")
    if value.startswith('"'):
        value = _unquote_sf_string(value)
    if not 1 <= len(value) <= MAX_KEY_LENGTH:
        raise _bad_key(f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} characters")
    if not all(" " <= ch <= "~" for ch in value):
        raise _bad_key("Idempotency-Key must be printable ASCII")
    return value


class _RawNumber(str):
    """A JSON number kept exactly as sent (canonical JSON compares values as sent)."""


def _canonical(value: Any) -> str:
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(json.dumps(k) + ":" + _canonical(v) for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    if isinstance(value, _RawNumber):
        return str.__str__(value)
    return json.dumps(value, ensure_ascii=False)


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def canonical_json(body: bytes) -> str:
    """Sorted keys, no insignificant whitespace, values as sent. Non-JSON bodies hash as raw text.

    Fast path: orjson keeps strings and integers exactly, so its sorted output is canonical unless
    the body has a non-integer number (whose text orjson would normalise: "2.50" → 2.5); those, and
    what orjson refuses (NaN, integers past 64 bits), take the exact path."""
    try:
        parsed_fast = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed_fast = _has_float  # a sentinel: not parsed
    if parsed_fast is not _has_float and not _has_float(parsed_fast):
        return orjson.dumps(parsed_fast, option=orjson.OPT_SORT_KEYS).decode()
    try:
        parsed = json.loads(body, parse_int=_RawNumber, parse_float=_RawNumber, parse_constant=_RawNumber)
    except ValueError:
        return "raw:" + body.decode("utf-8", "replace")
    return _canonical(parsed)


def fingerprint(method: str, path: str, body: bytes) -> bytes:
    return hashlib.sha256(f"{method}\n{path}\n{canonical_json(body)}".encode()).digest()


class KeysInFlight:
    """Keys this worker is writing right now. A second request with the same key arriving at the
    same worker meanwhile is answered 409 at once (it is in use), instead of queueing behind the
    first; across workers the database's primary key does the same job."""

    def __init__(self) -> None:
        self._keys: set[tuple[uuid.UUID, str]] = set()

    @contextmanager
    def hold(self, user_id: uuid.UUID, key: str | None) -> Iterator[None]:
        if key is None:
            yield
            return
        entry = (user_id, key)
        if entry in self._keys:
            raise DomainError("idempotency-key-in-use", "a request with this Idempotency-Key is in progress")
        self._keys.add(entry)
        try:
            yield
        finally:
            self._keys.discard(entry)

    def __len__(self) -> int:
        return len(self._keys)


# ---- database ---------------------------------------------------------------------------------

_PURGE = text(
    """
    DELETE FROM idempotency_keys WHERE (user_id, key) IN (
        SELECT user_id, key FROM idempotency_keys
        WHERE created_at < now() - make_interval(hours => :ttl_hours)
        LIMIT :batch FOR UPDATE SKIP LOCKED
    )
    """
)


async def purge_expired(engine: AsyncEngine, settings: Settings) -> int:
    """Delete expired keys in small batches, skipping rows a writer holds: never blocks writes."""
    total = 0
    while True:
        async with engine.begin() as conn:
            result = await conn.execute(
                _PURGE, {"ttl_hours": settings.idempotency_ttl_hours, "batch": settings.idempotency_purge_batch}
            )
        total += result.rowcount
        if result.rowcount < settings.idempotency_purge_batch:
            return total


async def purge_forever(engine: AsyncEngine, settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.idempotency_purge_interval_s)
        try:
            purged = await purge_expired(engine, settings)
            if purged:
                logger.info("purged %d expired idempotency keys", purged)
        except Exception:  # the purge is housekeeping: log and try again next round
            logger.exception("idempotency key purge failed")
