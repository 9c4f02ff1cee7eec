"""The one boundary for every balance-changing write: one SQL function call per command.

Each command is `quits_<command>(group_id uuid, cmd jsonb)` (source: app/sql/<function>.sql),
run as one statement in autocommit on the write pool: one round trip, a whole transaction, row
locks held only for the database's own time. The function claims the Idempotency-Key (storing the
response the app rendered, so a replay returns it), checks under its locks what only the database
can know (membership, versions, balances), and posts through quits_post, the only writer of ledger
entries and balances (an import posts through quits_post_import, its set-based sibling). Its domain
errors (SQLSTATE class QU) become DomainError here. An import's command is large: execute_bulk sends it
as bytes, in a transaction with the import's own statement timeout.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg
import orjson

from app.core.errors import DomainError, FieldError, not_found
from app.core.money import format_amount
from app.infra.config import Settings
from app.infra.testhooks import Faults
from app.infra.tx import run_statement, sqlstate
from app.ledger.postings import LedgerInvariantError


class Command(StrEnum):
    EXPENSE_CREATE = "quits_expense_create"
    EXPENSE_EDIT = "quits_expense_edit"
    EXPENSE_VOID = "quits_expense_void"
    SETTLEMENT_CREATE = "quits_settlement_create"
    SETTLEMENT_VOID = "quits_settlement_void"
    MEMBER_REMOVE = "quits_member_remove"
    KEY_ONLY = "quits_key_only"
    RECURRING_CREATE = "quits_recurring_create"
    RECURRING_UPDATE = "quits_recurring_update"
    GROUP_IMPORT = "quits_group_import"


# Domain SQLSTATEs raised by the functions in app/sql.
GROUP_NOT_FOUND = "QUG04"
EXPENSE_NOT_FOUND = "QUX04"
EXPENSE_NOT_EDITABLE = "QUX09"
EXPENSE_VOIDED = "QUX10"
EXPENSE_CHANGED = "QUX12"
MEMBER_NOT_FOUND = "QUM04"
MEMBER_HAS_BALANCE = "QUM09"
NOT_A_MEMBER = "QUM22"
KEY_IN_USE = "QUK09"
KEY_REUSED = "QUK22"
EXCEEDS_BALANCE = "QUS22"
SETTLEMENT_NOT_FOUND = "QUS04"
SETTLEMENT_NOT_VOIDABLE = "QUS09"
SETTLEMENT_VOIDED = "QUS10"
INVARIANT_BROKEN = "QUL00"
BALANCE_LIMIT = "QUB22"
RULE_NOT_FOUND = "QUR04"
RULE_STOPPED = "QUR10"
RULE_CHANGED = "QUR12"


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """The caller's Idempotency-Key (None: not idempotent) and the request's fingerprint."""

    user_id: uuid.UUID
    key: str | None
    fingerprint: bytes
    ttl_hours: int

    def doc(self, *, status: int, response: bytes) -> dict[str, Any] | None:
        """The command's "claim" member: what the function stores with the key for a replay."""
        if self.key is None:
            return None
        return {
            "key": self.key,
            "fingerprint": self.fingerprint.hex(),
            "status": status,
            "response": response.decode(),
            "ttl_hours": self.ttl_hours,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """A committed command. replayed: the key had been used by the same request, and status/body are
    the stored response; otherwise status and body are None (the app has its own rendering)."""

    replayed: bool
    status: int | None
    body: bytes | None


class Rejected(DomainError):
    """A command the database refused; sqlstate says exactly why (the constants above)."""

    def __init__(self, sqlstate: str, error: DomainError) -> None:
        super().__init__(error.code, error.detail, fields=error.fields)
        self.sqlstate = sqlstate


def _field_of(detail: str) -> str:
    field, _, _ = detail.partition(":")
    return field or "participants"


def rejection(exc: BaseException, *, decimals: int | None = None) -> Rejected | None:
    """The domain error for a QU-class SQLSTATE; None for any other error."""
    code = sqlstate(exc)
    if code is None or not code.startswith("QU"):
        return None
    message = str(getattr(exc, "message", None) or exc)
    detail = str(getattr(exc, "detail", None) or "")
    if code == INVARIANT_BROKEN:
        raise LedgerInvariantError(message)
    errors: dict[str, DomainError] = {
        GROUP_NOT_FOUND: not_found("group"),
        EXPENSE_NOT_FOUND: not_found("expense"),
        MEMBER_NOT_FOUND: not_found("member"),
        NOT_A_MEMBER: DomainError("validation-error", message, fields=[FieldError((_field_of(detail),), message)]),
        KEY_IN_USE: DomainError("idempotency-key-in-use", message),
        KEY_REUSED: DomainError("idempotency-key-reused", message),
        EXPENSE_NOT_EDITABLE: DomainError("expense-not-editable", message),
        EXPENSE_VOIDED: DomainError("expense-not-editable", "a voided expense cannot be edited"),
        EXPENSE_CHANGED: DomainError("precondition-failed", "the expense has changed since it was read"),
        MEMBER_HAS_BALANCE: DomainError("member-has-balance", message),
        SETTLEMENT_NOT_FOUND: not_found("settlement"),
        SETTLEMENT_NOT_VOIDABLE: DomainError("settlement-not-voidable", message),
        SETTLEMENT_VOIDED: DomainError("settlement-not-voidable", "the settlement is voided"),
        BALANCE_LIMIT: DomainError(
            "balance-limit-exceeded",
            f"the write would take a member's net balance, or the group's sum of positive nets, past {detail}"
            " minor units",
        ),
        EXCEEDS_BALANCE: exceeds_balance(int(detail) if detail.isdigit() else None, decimals),
        RULE_NOT_FOUND: not_found("recurring rule"),
        RULE_STOPPED: DomainError("recurring-stopped", "the recurring rule is stopped"),
        RULE_CHANGED: DomainError("precondition-failed", "the recurring rule has changed since it was read"),
    }
    if code not in errors:
        raise LedgerInvariantError(f"unknown domain SQLSTATE {code}: {message}")
    return Rejected(code, errors[code])


def exceeds_balance(limit_minor: int | None, decimals: int | None) -> DomainError:
    detail = "amount exceeds what the payer owes or the payee is owed"
    if limit_minor is None or decimals is None:
        return DomainError("settlement-exceeds-balance", detail)
    shown = format_amount(max(limit_minor, 0), decimals)
    msg = f"must be at most {shown}"
    return DomainError(
        "settlement-exceeds-balance", f"{detail} (at most {shown})", fields=[FieldError(("amount",), msg)]
    )


def _sql(command: Command) -> str:
    return f"SELECT replayed, status, body FROM {command.value}($1, $2::jsonb)"


_SQL = {command: _sql(command) for command in Command}
# A large command travels as UTF-8 bytes (bytea: no decode to str and back) and is parsed once, there.
_BULK_SQL = {c: f"SELECT replayed, status, body FROM {c.value}($1, convert_from($2::bytea, 'UTF8')::jsonb)"
             for c in Command}  # fmt: skip


async def _fetch(
    conn: asyncpg.Connection, sql: str, *args: object, decimals: int | None, timeout_s: float | None = None
) -> Outcome:
    try:
        row = await conn.fetchrow(sql, *args, timeout=timeout_s)
    except asyncpg.PostgresError as exc:
        rejected = rejection(exc, decimals=decimals)
        if rejected is not None:
            raise rejected from None
        raise
    assert row is not None
    body = row["body"]
    return Outcome(replayed=row["replayed"], status=row["status"], body=body.encode() if body else None)


async def execute(
    pool: asyncpg.Pool,
    settings: Settings,
    command: Command,
    group_id: uuid.UUID,
    cmd: dict[str, Any],
    *,
    faults: Faults | None = None,
    decimals: int | None = None,
) -> Outcome:
    """Run one command as one statement, retried on transient conflicts (app.infra.tx). With test
    faults, the statement and the faults share one explicit transaction."""
    sql, payload = _SQL[command], orjson.dumps({k: v for k, v in cmd.items() if v is not None}, default=str).decode()

    async def work(conn: asyncpg.Connection) -> Outcome:
        if faults is None:
            return await _fetch(conn, sql, group_id, payload, decimals=decimals)
        async with conn.transaction():
            outcome = await _fetch(conn, sql, group_id, payload, decimals=decimals)
            await faults.fire(conn)
            return outcome

    return await run_statement(pool, settings, work)


async def execute_bulk(
    pool: asyncpg.Pool,
    settings: Settings,
    command: Command,
    *,
    group_id: uuid.UUID,
    payload: bytes | bytearray,
    local: Mapping[str, str],
    timeout_s: float,
) -> Outcome:
    """One large command (its JSON already encoded) in one transaction whose `local` settings (SET LOCAL:
    a longer statement_timeout, the planner's defaults) hold for that transaction only; the client waits
    at most timeout_s for it. Retried as above."""

    async def work(conn: asyncpg.Connection) -> Outcome:
        async with conn.transaction():
            for name, value in local.items():
                await conn.execute("SELECT set_config($1, $2, true)", name, value)
            return await _fetch(conn, _BULK_SQL[command], group_id, payload, decimals=None, timeout_s=timeout_s)

    return await run_statement(pool, settings, work)
