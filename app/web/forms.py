"""The expense form: what the person typed ⇄ an expense body (the API's ExpenseIn), and back from a record.

A form is one row per member (included?, percentage, exact amount, shares, paid) plus the expense's own
fields. `to_body` builds exactly the JSON body the API would take; the services validate it (Pydantic's
ExpenseIn, then app.domain.expense_drafts.draft_expense: the same split code). Nothing here computes money:
it only moves strings, and `prefill` asks draft_expense which simple values reproduce a stored split.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from app.core.errors import DomainError, Path
from app.core.money import currency_decimals, format_amount
from app.domain.expense_drafts import ExpenseDraft, draft_expense
from app.domain.expenses import ExpenseRecord
from app.domain.groups import MemberRecord
from app.domain.schemas import ExpenseIn
from app.web.messages import FORM, Errors, FieldOf, from_domain, from_pydantic

SPLITS = ("equal", "percentage", "exact", "shares")
_COLUMN = {"percentage": "pct", "amount": "amt", "shares": "shr"}
_MAX_TEXT = 2_100


@dataclass(slots=True)
class Row:
    included: bool = True
    percentage: str = ""
    amount: str = ""
    shares: str = ""
    paid: str = ""


@dataclass(slots=True, kw_only=True)
class ExpenseForm:
    description: str = ""
    amount: str = ""
    currency: str = ""
    exchange_rate: str = ""
    split_type: str = "equal"
    paid_by: str = ""
    several_payers: bool = False
    date: str = ""
    category: str = ""
    notes: str = ""
    rows: dict[str, Row] = field(default_factory=dict)
    idem: str = ""
    if_match: str = ""
    note: str = ""  # shown above the form (e.g. how a stored split was read back)
    # filled by to_body: which user each list index of the body names (to put errors next to fields)
    participant_ids: list[str] = field(default_factory=list)
    payer_ids: list[str] = field(default_factory=list)


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip()[:_MAX_TEXT] if isinstance(value, str) else ""


def blank(members: Sequence[MemberRecord], *, currency: str, payer: uuid.UUID, idem: str) -> ExpenseForm:
    rows = {str(m.user_id): Row() for m in members}
    return ExpenseForm(currency=currency, paid_by=str(payer), rows=rows, idem=idem)


def from_form(form: Mapping[str, Any], members: Sequence[MemberRecord], group_currency: str) -> ExpenseForm:
    rows = {}
    for m in members:
        uid = str(m.user_id)
        rows[uid] = Row(
            included=form.get(f"inc_{uid}") is not None,
            percentage=_text(form, f"pct_{uid}"),
            amount=_text(form, f"amt_{uid}"),
            shares=_text(form, f"shr_{uid}"),
            paid=_text(form, f"paid_{uid}"),
        )
    split = _text(form, "split_type")
    return ExpenseForm(
        description=_text(form, "description"),
        amount=_text(form, "amount"),
        currency=(_text(form, "currency") or group_currency).upper(),
        exchange_rate=_text(form, "exchange_rate"),
        split_type=split if split in SPLITS else "equal",
        paid_by=_text(form, "paid_by"),
        several_payers=_text(form, "payer_mode") == "several",
        date=_text(form, "date"),
        category=_text(form, "category"),
        notes=_text(form, "notes"),
        rows=rows,
        idem=_text(form, "idem"),
        if_match=_text(form, "if_match"),
    )


def _shares_value(text: str) -> int | str:
    """A whole number of shares as the JSON integer the API takes; anything else stays text (refused)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else text


def to_body(f: ExpenseForm, group_currency: str) -> tuple[dict[str, Any], Errors]:
    """The API body, and the form's own refusals (missing values) before the services see it."""
    errors: Errors = {}
    body: dict[str, Any] = {"description": f.description, "amount": f.amount, "split_type": f.split_type}
    if not f.description:
        errors["description"] = "Enter what the expense was for."
    if not f.amount:
        errors["amount"] = "Enter the amount."
    if f.currency != group_currency or f.exchange_rate:
        body["currency"] = f.currency
        if f.exchange_rate:
            body["exchange_rate"] = f.exchange_rate
    f.payer_ids = [uid for uid, r in f.rows.items() if r.paid] if f.several_payers else []
    if f.several_payers:
        body["payers"] = [{"user_id": uid, "amount": f.rows[uid].paid} for uid in f.payer_ids]
        if not f.payer_ids:
            errors["payers"] = "Enter what each payer paid."
    elif f.paid_by:
        body["paid_by"] = f.paid_by
    else:
        errors["paid_by"] = "Choose who paid."
    f.participant_ids = [uid for uid, r in f.rows.items() if r.included]
    if not f.participant_ids:
        errors["participants"] = "Choose at least one person to share it."
    for uid in f.participant_ids:
        row = f.rows[uid]
        value = {"percentage": row.percentage, "exact": row.amount, "shares": row.shares}.get(f.split_type)
        column = {"percentage": "pct", "exact": "amt", "shares": "shr"}.get(f.split_type, "")
        if value == "":
            errors[f"{column}_{uid}"] = f"Enter a value for a {f.split_type} split, or leave this person out."
        elif f.split_type == "shares" and isinstance(_shares_value(row.shares), str):
            errors[f"shr_{uid}"] = "Enter a whole number of shares, like 2."
    body["participants"] = [_participant(f, uid) for uid in f.participant_ids]
    for name in ("date", "category", "notes"):
        if getattr(f, name):
            body[name] = getattr(f, name)
    return body, errors


def _participant(f: ExpenseForm, uid: str) -> dict[str, Any]:
    row, part = f.rows[uid], {"user_id": uid}
    if f.split_type == "percentage":
        part["percentage"] = row.percentage
    elif f.split_type == "exact":
        part["amount"] = row.amount
    elif f.split_type == "shares":
        part["shares"] = _shares_value(row.shares)  # type: ignore[assignment]
    return part


def field_of(f: ExpenseForm) -> FieldOf:
    """A body path → the form field it came from."""

    def name(path: Path) -> str:
        if not path:
            return FORM
        head = str(path[0])
        if head == "participants" and len(path) >= 3 and isinstance(path[1], int) and str(path[2]) in _COLUMN:
            if path[1] < len(f.participant_ids):
                return f"{_COLUMN[str(path[2])]}_{f.participant_ids[path[1]]}"
        if head == "payers" and len(path) >= 2 and isinstance(path[1], int) and path[1] < len(f.payer_ids):
            return f"paid_{f.payer_ids[path[1]]}"
        return head

    return name


def draft(f: ExpenseForm, group_currency: str) -> tuple[ExpenseIn | None, ExpenseDraft | None, Errors]:
    """The validated body and draft (the services' own checks), or the errors by field."""
    body, errors = to_body(f, group_currency)
    if errors:
        return None, None, errors
    try:
        model = ExpenseIn.model_validate(body)
    except ValidationError as exc:
        return None, None, from_pydantic(exc, field_of(f))
    try:
        return model, draft_expense(model, group_currency), {}
    except DomainError as exc:
        return model, None, from_domain(exc, field_of(f))


# ---- edit: a stored expense back into the form ------------------------------------------------------


def _owed_matches(f: ExpenseForm, record: ExpenseRecord) -> bool:
    _, d, errors = draft(f, record.group_currency)
    return not errors and d is not None and d.owed == record.owed and d.payers == record.payers


def _back(minor: int, record: ExpenseRecord) -> int:
    """A group-currency part in the expense's currency (approximately: only to pre-fill a form)."""
    if record.exchange_rate is None:
        return minor
    return (2 * minor * record.amount_minor + record.group_amount_minor) // (2 * record.group_amount_minor)


def _fill_to(values: dict[str, int], total: int) -> dict[str, int]:
    """Move the rounding difference to the largest value, so the values sum to total."""
    if values:
        largest = max(values, key=lambda k: (values[k], k))
        values[largest] += total - sum(values.values())
    return values


def prefill(record: ExpenseRecord, members: Sequence[MemberRecord], *, idem: str, if_match: str) -> ExpenseForm:
    """The edit form of a stored expense. Percentages and shares are not stored (only what each person
    owes), so the simplest values that give the same split under draft_expense are searched for."""
    decimals = currency_decimals(record.currency)
    owed = {str(u): a for u, a in record.owed}
    rows = {str(m.user_id): Row(included=str(m.user_id) in owed) for m in members}
    for uid in owed:
        rows.setdefault(uid, Row(included=True))
    f = ExpenseForm(
        description=record.description,
        amount=format_amount(record.amount_minor, decimals),
        currency=record.currency,
        exchange_rate=record.exchange_rate or "",
        split_type=record.split_type,
        date=record.date.isoformat(),
        category=record.category or "",
        notes=record.notes or "",
        rows=rows,
        idem=idem,
        if_match=if_match,
    )
    if len(record.payers) == 1:
        f.paid_by = str(record.payers[0][0])
    else:
        f.several_payers = True
        paid = _fill_to({str(u): _back(a, record) for u, a in record.payers}, record.amount_minor)
        for uid, minor in paid.items():
            rows[uid].paid = format_amount(minor, decimals)
    back = _fill_to({u: _back(a, record) for u, a in owed.items()}, record.amount_minor)
    if record.split_type == "exact":
        for uid, minor in back.items():
            rows[uid].amount = format_amount(minor, decimals)
    elif record.split_type == "shares":
        _search_shares(f, back, record)
    elif record.split_type == "percentage":
        _search_percentages(f, back, record)
    if not _owed_matches(f, record):
        f.note = "The amounts below were read back from what was saved: check them before saving."
    return f


def _search_shares(f: ExpenseForm, back: dict[str, int], record: ExpenseRecord) -> None:
    smallest = min((v for v in back.values() if v > 0), default=1)
    for multiple in range(1, 101):
        for uid, v in back.items():
            f.rows[uid].shares = str(max(1, round(v * multiple / smallest)))
        if _owed_matches(f, record):
            return
    divisor = math.gcd(*back.values()) or 1
    for uid, v in back.items():
        f.rows[uid].shares = str(max(1, v // divisor))


def _search_percentages(f: ExpenseForm, back: dict[str, int], record: ExpenseRecord) -> None:
    total = sum(back.values()) or 1
    for places in range(5):
        unit = 10**places  # percentages in units of 10^-places
        pcts = _fill_to({u: round(v * 100 * unit / total) for u, v in back.items()}, 100 * unit)
        for uid, p in pcts.items():
            f.rows[uid].percentage = format_amount(max(p, 0), places)
        if _owed_matches(f, record):
            return
