"""Failed-login limits per account and per client address, counted in PostgreSQL (table login_failures).

Every password check (a login, or the current password of a password change) is counted *before* the
password is verified, in its own committed transaction, so parallel guesses cannot slip past the limit
together; a check that succeeds takes its count back (the account's counter is reset, the address's
goes down by one). A subject is over its limit when its counter within the current fixed window
exceeds the setting: 429 `too-many-attempts`, with Retry-After the seconds left in the window.

The counters are shared by every worker and host (nothing is kept in a worker's memory). A subject is
the SHA-256 of "user:<id>" (a registered email), "email:<lowered email>" (an unknown one) or
"address:<client>" (an IPv6 client counts by its /64). Rows of past windows are deleted, a few at a
time, by the transactions that count. Locking someone out by failing their logins is the usual cost of
per-account limits: their API tokens keep working.
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.errors import DomainError
from app.infra.config import Settings

PURGE_BATCH = 100

_COUNT = text(
    """
    INSERT INTO login_failures AS f (subject, window_start, failures) VALUES (:subject, now(), 1)
    ON CONFLICT (subject) DO UPDATE SET
        failures = CASE WHEN f.window_start > now() - make_interval(secs => :window_s)
                        THEN least(f.failures + 1, :cap) ELSE 1 END,
        window_start = CASE WHEN f.window_start > now() - make_interval(secs => :window_s)
                            THEN f.window_start ELSE now() END
    RETURNING failures, greatest(1, ceil(extract(epoch FROM
        f.window_start + make_interval(secs => :window_s) - now())))::int AS retry_after_s
    """
)
_PURGE = text(
    """
    DELETE FROM login_failures WHERE subject IN (
        SELECT subject FROM login_failures WHERE window_start <= now() - make_interval(secs => :window_s)
        LIMIT :batch)
    """
)
_RESET = text("DELETE FROM login_failures WHERE subject = :subject")
_TAKE_BACK = text("UPDATE login_failures SET failures = greatest(failures - 1, 0) WHERE subject = :subject")


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """The two counters one password check was counted against."""

    account: bytes
    address: bytes


def _subject(kind: str, value: str) -> bytes:
    return hashlib.sha256(f"{kind}:{value}".encode()).digest()


def address_key(host: str | None) -> str:
    """The client's address as counted: an IPv6 address by its /64, anything else as it is."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        return str(mapped) if mapped is not None else str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def attempt_for(*, user_id: uuid.UUID | None, email: str, host: str | None) -> Attempt:
    account = _subject("user", str(user_id)) if user_id is not None else _subject("email", email.lower())
    return Attempt(account=account, address=_subject("address", address_key(host)))


def too_many(retry_after_s: int) -> DomainError:
    return DomainError(
        "too-many-attempts",
        f"too many failed password attempts; retry in {retry_after_s} s",
        retry_after_s=retry_after_s,
    )


async def count(conn: AsyncConnection, attempt: Attempt, settings: Settings) -> int | None:
    """Count the attempt against both subjects (in ascending subject order: concurrent counts never
    deadlock). None when it may go on; else the seconds until the fuller window ends. The caller
    commits the count whatever it decides."""
    window_s = settings.login_failure_window_s
    limits = {
        attempt.account: settings.login_max_failures_per_account,
        attempt.address: settings.login_max_failures_per_address,
    }
    wait = 0
    for subject in sorted(limits):
        params = {"subject": subject, "window_s": window_s, "cap": limits[subject] + 1}
        row = (await conn.execute(_COUNT, params)).one()
        if row.failures > limits[subject]:
            wait = max(wait, row.retry_after_s)
    await conn.execute(_PURGE, {"window_s": window_s, "batch": PURGE_BATCH})
    return wait or None


async def take_back(conn: AsyncConnection, attempt: Attempt) -> None:
    """The password was right: the account starts afresh and the address's count drops by this attempt
    (rows locked in ascending subject order, as count does)."""
    for subject in sorted((attempt.account, attempt.address)):
        await conn.execute(_RESET if subject == attempt.account else _TAKE_BACK, {"subject": subject})
