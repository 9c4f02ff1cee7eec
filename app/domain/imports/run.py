"""Import: the body → a plan (pure, per source) → one ledger command that writes it all or nothing.

The write is one call of quits_group_import (app/sql), in one transaction: it claims the
Idempotency-Key, creates the group, its guests, memberships and records, and opens the group's ledger
through quits_post_import, which posts every record set-based with quits_post's checks (every posting
sums to zero, every user is a member, the balance limit) and verifies that each balance equals its
ledger sum. Why a bulk writer rather than one quits_expense_create per record: 10^5 function calls
(each parsing its jsonb, locking and posting one posting, checking the group's balance limit) take
minutes; one set-based statement takes seconds, and nobody else can see the group until it commits,
so per-record locks would protect nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from app.core.errors import DomainError, FieldError
from app.domain import expenses, groups, settlements
from app.domain.imports import ihatemoney, quits_format, splitwise
from app.domain.imports.plan import MAX_LISTED, ImportOptions, ImportPlan
from app.infra.config import Settings
from app.ledger import commands
from app.ledger.commands import Claim, Command, Outcome

CREATED = 201
JSON, CSV = "application/json", "text/csv"


def _invalid_body(msg: str) -> DomainError:
    return DomainError("validation-error", msg, fields=[FieldError((), msg)])


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def parse_json(body: bytes) -> Any:
    """JSON with every non-integer number as the Decimal it prints as (never a binary float)."""
    try:
        return json.loads(body.decode("utf-8-sig"), parse_float=Decimal, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise _invalid_body("the body is not UTF-8") from None
    except ValueError as exc:  # JSONDecodeError says where
        raise _invalid_body(f"the body is not valid JSON: {exc}") from None


def plan_import(body: bytes, media_type: str, options: ImportOptions) -> ImportPlan:
    """Detect the source by media type and shape; parse it. Pure (runs in a worker thread)."""
    if media_type == CSV:
        return splitwise.parse(body, options)
    if media_type != JSON:
        raise DomainError(
            "unsupported-media-type",
            "send a quits or ihatemoney export as application/json, or a Splitwise export as text/csv",
        )
    doc = parse_json(body)
    if isinstance(doc, dict) and "format" in doc:
        return quits_format.parse(doc, options)
    if isinstance(doc, list):
        return ihatemoney.parse(doc, options)
    raise _invalid_body(
        'a JSON body must be a quits export (an object with "format": "quits") or an ihatemoney bills export'
        " (an array of bills)"
    )


def prepare(
    body: bytes, media_type: str, options: ImportOptions, *, claim: Claim
) -> tuple[uuid.UUID, bytes, bytearray]:
    """The file → the new group's id, the response and the command (run it in a worker thread: pure, and
    the plan's records are gone once the command holds them). The API's import and the web's call this."""
    plan = plan_import(body, media_type, options)
    caller = options.caller
    member = groups.MemberRecord(user_id=caller.id, name=caller.name, email=caller.email, guest=False)
    rendered = orjson.dumps(render(plan, member))
    return plan.group.id, rendered, command(plan, claim, rendered)


def render(plan: ImportPlan, caller_member: groups.MemberRecord) -> dict[str, Any]:
    """The response: the new group with its members, and what the import did."""
    members = [caller_member] + [
        groups.MemberRecord(user_id=u, name=n, email=None, guest=True) for u, n in plan.guests if u not in plan.former
    ]
    return {
        **groups.render(plan.group),
        "members": [groups.render_member(m) for m in sorted(members, key=lambda m: m.user_id)],
        "import": {
            "source": plan.source,
            "expenses": len(plan.expenses),
            "settlements": len(plan.settlements),
            "adjustments": plan.adjustments[:MAX_LISTED],
            "adjustments_count": len(plan.adjustments),
            "skipped": plan.skipped[:MAX_LISTED],
            "skipped_count": len(plan.skipped),
        },
    }


def _defaults(plan: ImportPlan) -> tuple[dict[str, Any], dict[str, Any]]:
    """What most imported expense and settlement rows share: each row leaves these out unless it differs
    (quits_group_import reads the rows over these defaults), so the command is half the size."""
    g = plan.group
    common = {"group_id": g.id, "currency": g.currency, "created_by": g.created_by, "created_at": g.created_at,
              "voided_at": None}  # fmt: skip
    expense = {**common, "exchange_rate": None, "group_currency": g.currency, "version": 1, "category": None,
               "notes": None, "updated_by": g.created_by, "updated_at": g.created_at}  # fmt: skip
    return expense, {**common, "note": None}


def _rows(out: bytearray, rows: Iterable[dict[str, Any]], defaults: dict[str, Any]) -> None:
    out += b"["
    for i, row in enumerate(rows):
        if i:
            out += b","
        out += orjson.dumps({k: v for k, v in row.items() if k not in defaults or defaults[k] != v}, default=str)
    out += b"]"


def _drain(records: list[Any]) -> Iterator[Any]:
    """Each record once, dropped from the list as it is handed out (so a record and its encoding are not
    both kept for 10^5 records)."""
    for i, record in enumerate(records):
        records[i] = None
        yield record
    records.clear()


def command(plan: ImportPlan, claim: Claim, response: bytes) -> bytearray:
    """The command, encoded record by record into one buffer (no list of every record's encoding).
    Consumes the plan's records (render the response first)."""
    group = plan.group
    expense_defaults, settlement_defaults = _defaults(plan)
    head: dict[str, Any] = {
        "caller": claim.user_id,
        "source": plan.source,
        "group": {"id": group.id, "name": group.name, "currency": group.currency, "created_by": group.created_by,
                  "created_at": group.created_at},
        "guests": [{"id": u, "name": n} for u, n in plan.guests],
        "members": plan.members,
        "former": plan.former,
        "expense_defaults": expense_defaults,
        "settlement_defaults": settlement_defaults,
    }
    key = claim.doc(status=CREATED, response=response)
    if key is not None:
        head["claim"] = key
    out = bytearray(orjson.dumps(head, default=str)[:-1])
    out += b',"expenses":'
    _rows(out, (expenses.row(e) for e in _drain(plan.expenses)), expense_defaults)
    out += b',"versions":'
    versions = ({"group_id": group.id, "expense_id": v.expense_id, "version": v.version, "doc": v.doc,
                 "updated_by": v.updated_by, "updated_at": v.updated_at} for v in _drain(plan.versions))  # fmt: skip
    _rows(out, versions, {})
    out += b',"settlements":'
    _rows(out, (settlements.row(s) for s in _drain(plan.settlements)), settlement_defaults)
    out += b"}"
    return out


async def write(pool: asyncpg.Pool, settings: Settings, *, group_id: uuid.UUID, payload: bytearray) -> Outcome:
    """One statement, one transaction, with the import's own statement timeout and work_mem (its sort of
    10^5 records' entries fits in memory) and the planner's defaults (the write pool's sessions force
    generic plans and index scans, made for one-row writes)."""
    local = {
        "statement_timeout": str(settings.import_statement_timeout_ms),
        "work_mem": f"{settings.import_work_mem_mb}MB",
        "enable_seqscan": "on",
        "plan_cache_mode": "auto",
    }
    return await commands.execute_bulk(
        pool,
        settings,
        Command.GROUP_IMPORT,
        group_id=group_id,
        payload=payload,
        local=local,
        timeout_s=settings.import_statement_timeout_ms / 1000 + 5,
    )
