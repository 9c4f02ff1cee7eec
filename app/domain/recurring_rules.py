"""Recurring rules: the record, its one renderer, the validation of a rule body, and reads.

A rule keeps the expense body it repeats as `template`: the body as validated, normalised (the
effective currency, amounts with its full decimals), without `date`. Every occurrence is validated
again by the same pure code as a POST of an expense (app.domain.expense_drafts.draft_expense), with
`date` = the occurrence's date, and made through the same command (app.domain.recurring_scheduler).
Writes are in app.domain.recurring; the dates in app.core.calendar.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core import calendar
from app.core.calendar import Schedule, ScheduleError
from app.core.errors import DomainError, invalid, not_found
from app.core.money import currency_decimals, format_amount, parse_amount
from app.core.records import rfc3339
from app.domain.expense_drafts import ExpenseDraft, draft_expense
from app.domain.recurring_schemas import RecurringIn, ScheduleIn
from app.domain.schemas import ExpenseIn, ParticipantIn
from app.infra.config import Settings
from app.infra.db import keyset_params

TEMPLATE_KEYS = ("description", "amount", "currency", "exchange_rate", "paid_by", "payers", "split_type",
                 "participants", "category", "notes")  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleRecord:
    """A rule as stored: the fields are the columns of table recurring_rules (app.models), but the lease."""

    id: uuid.UUID
    group_id: uuid.UUID
    template: dict[str, Any]
    every: str
    repeat_interval: int
    start_date: dt.date
    end_date: dt.date | None
    count: int | None
    next_index: int
    next_date: dt.date | None
    last_date: dt.date | None
    active: bool
    stop_reason: str | None
    stopped_at: datetime | None
    version: int
    created_by: uuid.UUID
    created_at: datetime
    updated_by: uuid.UUID
    updated_at: datetime

    @property
    def schedule(self) -> Schedule:
        return Schedule(every=self.every, interval=self.repeat_interval, start_date=self.start_date,
                        end_date=self.end_date, count=self.count)  # fmt: skip


def schedule_fields(schedule: Schedule) -> dict[str, Any]:
    """The record fields of a schedule."""
    return {"every": schedule.every, "repeat_interval": schedule.interval, "start_date": schedule.start_date,
            "end_date": schedule.end_date, "count": schedule.count}  # fmt: skip


def _day(day: dt.date | None) -> str | None:
    return day.isoformat() if day is not None else None


def render(rule: RuleRecord) -> dict[str, Any]:
    """The rule on the wire (schema RecurringOut): the one place it is rendered."""
    return {
        "id": str(rule.id),
        "group_id": str(rule.group_id),
        **{key: rule.template.get(key) for key in TEMPLATE_KEYS},
        "schedule": {
            "every": rule.every,
            "interval": rule.repeat_interval,
            "start_date": rule.start_date.isoformat(),
            "end_date": _day(rule.end_date),
            "count": rule.count,
        },
        "next_date": _day(rule.next_date),
        "active": rule.active,
        "stop_reason": rule.stop_reason,
        "stopped_at": rfc3339(rule.stopped_at) if rule.stopped_at else None,
        "version": rule.version,
        "created_by": str(rule.created_by),
        "created_at": rfc3339(rule.created_at),
        "updated_by": str(rule.updated_by),
        "updated_at": rfc3339(rule.updated_at),
    }


def row(rule: RuleRecord) -> dict[str, Any]:
    """The recurring_rules row the write functions store (jsonb_populate_record reads it by column name)."""
    return {field: getattr(rule, field) for field in RuleRecord.__dataclass_fields__}


def etag(rule: RuleRecord) -> str:
    """Changes with every change of the rule's state: an edit, a skip, a stop, each occurrence made."""
    return f'"{rule.version}"'


def stopped_error() -> DomainError:
    return DomainError("recurring-stopped", "the recurring rule is stopped; create a new one")


def today(settings: Settings) -> dt.date:
    """The date (UTC) the rules and their scheduler go by: settings.recurring_today pins it (tests)."""
    return settings.recurring_today or datetime.now(UTC).date()


# ---- validation (pure) -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Validated:
    template: dict[str, Any]
    schedule: Schedule
    members: list[list[str]]  # [[field, user_id], ...]: who must be current members (payers first)


def _schedule(given: ScheduleIn) -> Schedule:
    try:
        start = calendar.parse_date("start_date", given.start_date)
        end = calendar.parse_date("end_date", given.end_date) if given.end_date is not None else None
        schedule = Schedule(every=given.every, interval=given.interval, start_date=start, end_date=end,
                            count=given.count)  # fmt: skip
        calendar.check(schedule)
    except ScheduleError as exc:
        raise invalid(("schedule", exc.field), exc.msg) from None
    return schedule


def _participant(p: ParticipantIn, money: Callable[[str], str]) -> dict[str, Any]:
    out: dict[str, Any] = {"user_id": str(p.user_id)}
    if p.percentage is not None:
        out["percentage"] = p.percentage
    if p.amount is not None:
        out["amount"] = money(p.amount)
    if p.shares is not None:
        out["shares"] = p.shares
    return out


def _template(body: RecurringIn, draft: ExpenseDraft) -> dict[str, Any]:
    """The body as validated: the effective currency, every amount with the currency's full decimals."""
    decimals = currency_decimals(draft.currency)

    def money(amount: str) -> str:
        return format_amount(parse_amount(amount, decimals, allow_zero=True), decimals)

    return {
        "description": body.description,
        "amount": format_amount(draft.amount_minor, decimals),
        "currency": draft.currency,
        "exchange_rate": draft.exchange_rate,
        "paid_by": str(body.paid_by) if body.paid_by is not None else None,
        "payers": None if body.payers is None else [
            {"user_id": str(p.user_id), "amount": money(p.amount)} for p in body.payers
        ],
        "split_type": body.split_type,
        "participants": [_participant(p, money) for p in body.participants],
        "category": body.category,
        "notes": body.notes,
    }


def expense_body(template: dict[str, Any], day: dt.date) -> ExpenseIn:
    """The expense a rule makes on day: its template with `date` (pydantic.ValidationError if it is not one)."""
    return ExpenseIn.model_validate({**template, "date": day.isoformat()})


def validate(body: RecurringIn, group_currency: str) -> Validated:
    """A rule body, by the rules of a schedule and of an expense (dated start_date); 422 naming the field."""
    schedule = _schedule(body.schedule)
    fields = body.model_dump(exclude={"schedule"})
    draft = draft_expense(ExpenseIn.model_validate({**fields, "date": body.schedule.start_date}), group_currency)
    members = [[draft.payer_field, str(u)] for u, _ in draft.payers] + [["participants", str(u)] for u, _ in draft.owed]
    return Validated(template=_template(body, draft), schedule=schedule, members=members)


def position(schedule: Schedule, *, after: dt.date | None, today: dt.date, max_due: int) -> tuple[int, dt.date]:
    """Where a new (after=None) or edited rule starts: its first occurrence after the last one made or
    skipped. 422 when there is none, or when more than max_due of them would be due at once."""
    index = calendar.first_after(schedule, after)
    first = calendar.occurrence(schedule, index)
    if first is None:
        raise invalid(("schedule",), f"the schedule has no occurrence after {after}, the last one made or skipped")
    due = calendar.due(schedule, from_index=index, today=today)
    if due > max_due:
        raise invalid(("schedule", "start_date"), f"{due} occurrences would be due at once (up to {today});"
                      f" at most {max_due}: choose a later start_date")  # fmt: skip
    return index, first


# ---- reads -------------------------------------------------------------------------------------------

COLUMNS = ", ".join(RuleRecord.__dataclass_fields__)


def record(fields: dict[str, Any]) -> RuleRecord:
    return RuleRecord(**{name: fields[name] for name in RuleRecord.__dataclass_fields__})


async def get(conn: AsyncConnection, group_id: uuid.UUID, rule_id: uuid.UUID) -> RuleRecord:
    sql = text(f"SELECT {COLUMNS} FROM recurring_rules WHERE id = :id AND group_id = :g")
    found = (await conn.execute(sql, {"id": rule_id, "g": group_id})).first()
    if found is None:
        raise not_found("recurring rule")
    return record(dict(found._mapping))


async def list_page(
    conn: AsyncConnection, group_id: uuid.UUID, limit: int, *, after: tuple[datetime, uuid.UUID] | None
) -> list[RuleRecord]:
    where = "AND (created_at, id) < (:after_at, :after_id)" if after else ""
    rows = await conn.execute(
        text(
            f"SELECT {COLUMNS} FROM recurring_rules WHERE group_id = :g {where}"
            " ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        {"g": group_id, "limit": limit, **keyset_params(after)},
    )
    return [record(dict(r._mapping)) for r in rows]
