"""The recurring expense form: the expense form's fields (app.web.forms) plus a schedule ⇄ the API's rule
body (RecurringIn), validated by the services' own code (app.domain.recurring_rules.validate: the schedule's
rules and the expense's, through draft_expense). Nothing here decides what a valid rule is; it only moves
strings and puts each refusal next to the field it came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.core.errors import DomainError, Path
from app.domain import recurring_rules as rules
from app.domain.expense_drafts import ExpenseDraft
from app.domain.recurring_schemas import RecurringIn
from app.web.forms import ExpenseForm, draft, field_of, to_body
from app.web.messages import Errors, FieldOf, from_domain, from_pydantic

EVERY = (("day", "Days"), ("week", "Weeks"), ("month", "Months"), ("year", "Years"))
SCHEDULE_FIELDS = ("every", "interval", "start_date", "end_date", "count")
_MAX = 40


@dataclass(slots=True, kw_only=True)
class ScheduleForm:
    every: str = "month"
    interval: str = "1"
    start_date: str = ""
    end_date: str = ""
    count: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Checked:
    """A rule form once checked: the body the API would take and the services' validation of it, or the
    errors by field; the split preview whenever the expense part computes."""

    body: RecurringIn | None
    validated: rules.Validated | None
    preview: ExpenseDraft | None
    errors: Errors


def schedule_from(form: Mapping[str, Any]) -> ScheduleForm:
    def text(name: str) -> str:
        value = form.get(name)
        return value.strip()[:_MAX] if isinstance(value, str) else ""

    return ScheduleForm(every=text("every"), interval=text("interval"), start_date=text("start_date"),
                        end_date=text("end_date"), count=text("count"))  # fmt: skip


def _whole(text: str) -> int | str:
    """A whole number as the JSON integer the API takes; anything else stays text (refused by the schema)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else text


def schedule_body(s: ScheduleForm) -> tuple[dict[str, Any], Errors]:
    """The API's `schedule`, and the form's own refusals (missing values) before the services see it."""
    errors: Errors = {}
    body: dict[str, Any] = {"every": s.every, "start_date": s.start_date}
    if not s.start_date:
        errors["start_date"] = "Enter the date of the first one."
    if s.interval:
        body["interval"] = _whole(s.interval)
    if s.end_date:
        body["end_date"] = s.end_date
    if s.count:
        body["count"] = _whole(s.count)
    return body, errors


def rule_field_of(f: ExpenseForm) -> FieldOf:
    """A rule body's path → its form field: schedule members by name, the rest as in the expense form."""
    expense_field = field_of(f)

    def name(path: Path) -> str:
        if path and path[0] == "schedule":
            member = str(path[1]) if len(path) > 1 else ""
            return member if member in SCHEDULE_FIELDS else "schedule"
        return expense_field(path)

    return name


def check(f: ExpenseForm, s: ScheduleForm, group_currency: str) -> Checked:
    """The rule as the API would validate it: the same schema (RecurringIn) and the same rule validation
    (recurring_rules.validate); the preview from the same draft code as an expense."""
    expense, expense_errors = to_body(f, group_currency)
    expense.pop("date", None)  # a rule's dates are its schedule's
    schedule, schedule_errors = schedule_body(s)
    preview = draft(f, group_currency)[1] if not expense_errors else None
    errors = {**expense_errors, **schedule_errors}
    if errors:
        return Checked(body=None, validated=None, preview=preview, errors=errors)
    name = rule_field_of(f)
    try:
        body = RecurringIn.model_validate({**expense, "schedule": schedule})
    except ValidationError as exc:
        return Checked(body=None, validated=None, preview=preview, errors=from_pydantic(exc, name))
    try:
        validated = rules.validate(body, group_currency)
    except DomainError as exc:
        return Checked(body=body, validated=None, preview=preview, errors=from_domain(exc, name))
    return Checked(body=body, validated=validated, preview=preview, errors={})
