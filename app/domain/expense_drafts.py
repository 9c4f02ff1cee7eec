"""Pure: an expense payload (create or edit) → a validated draft, in both currencies. No I/O.

Order of the rules: currency and rate, amount, payers, participants and the split (in the expense's
currency), then the conversion of the total and of each part into the group's currency
(app.core.conversion). Every failure is a 422 naming the field; nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from app.core.conversion import ONE, ConversionError, convert_parts, convert_total, parse_rate
from app.core.errors import invalid
from app.core.money import MAX_MINOR, MoneyError, currency_decimals, format_amount, is_currency_code, parse_amount
from app.core.records import Entry
from app.core.splits import (
    MAX_PARTICIPANTS,
    SplitError,
    parse_percentage,
    split_equal,
    split_exact,
    split_percentage,
    split_shares,
)
from app.domain.schemas import ExpenseIn, ParticipantIn

_FIELD_FOR_SPLIT = {"equal": None, "percentage": "percentage", "exact": "amount", "shares": "shares"}
_SPLIT_FIELDS = ("percentage", "amount", "shares")
EARLIEST, LATEST = dt.date(1900, 1, 1), dt.date(2999, 12, 31)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpenseDraft:
    description: str
    currency: str  # the expense's
    amount_minor: int  # in currency
    exchange_rate: str | None  # as entered; None in the group's currency
    group_amount_minor: int  # in the group's currency: what the ledger posts
    payers: tuple[Entry, ...]  # group currency, ascending user_id, sums to group_amount_minor
    payer_field: str  # "paid_by" or "payers": where a payer who is not a member is reported
    split_type: str
    owed: tuple[Entry, ...]  # group currency, ascending user_id, sums to group_amount_minor
    date: dt.date | None  # None: today on create, unchanged on edit
    category: str | None
    notes: str | None


def _check_participant_fields(split_type: str, index: int, p: ParticipantIn) -> None:
    wanted = _FIELD_FOR_SPLIT[split_type]
    for field in _SPLIT_FIELDS:
        given = getattr(p, field) is not None
        if given and field != wanted:
            raise invalid(("participants", index, field), f"{field} is not allowed with split_type {split_type}")
        if not given and field == wanted:
            raise invalid(("participants", index, field), f"{field} is required for {split_type}")


def _exact_amounts(body: ExpenseIn, amount_minor: int, decimals: int) -> list[Entry]:
    amounts = []
    for i, p in enumerate(body.participants):
        try:
            amounts.append((p.user_id, parse_amount(p.amount, decimals, allow_zero=True)))
        except MoneyError as exc:
            raise invalid(("participants", i, "amount"), f"amount {exc}") from None
    total = sum(a for _, a in amounts)
    if total != amount_minor:
        shown, wanted = format_amount(total, decimals), format_amount(amount_minor, decimals)
        raise invalid(("participants",), f"exact amounts sum to {shown}, not {wanted}")
    return amounts


def _owed(body: ExpenseIn, amount_minor: int, decimals: int) -> list[Entry]:
    ps = body.participants
    if body.split_type == "equal":
        return split_equal(amount_minor, [p.user_id for p in ps], max_participants=MAX_PARTICIPANTS)
    if body.split_type == "shares":
        return split_shares(amount_minor, [(p.user_id, p.shares or 0) for p in ps], max_participants=MAX_PARTICIPANTS)
    if body.split_type == "percentage":
        pcts = []
        for i, p in enumerate(ps):
            try:
                pcts.append((p.user_id, parse_percentage(p.percentage)))
            except SplitError as exc:
                raise invalid(("participants", i, "percentage"), str(exc)) from None
        return split_percentage(amount_minor, pcts, max_participants=MAX_PARTICIPANTS)
    return split_exact(amount_minor, _exact_amounts(body, amount_minor, decimals), max_participants=MAX_PARTICIPANTS)


def _rate(body: ExpenseIn, currency: str, group_currency: str) -> int | None:
    """The rate x 10^10, or None in the group's currency."""
    if body.exchange_rate is None:
        if currency != group_currency:
            raise invalid(("exchange_rate",), f"exchange_rate is required when currency is not {group_currency}")
        return None
    try:
        rate = parse_rate(body.exchange_rate)
    except ConversionError as exc:
        raise invalid(("exchange_rate",), f"exchange_rate {exc}") from None
    if currency == group_currency:
        if rate != ONE:
            raise invalid(("exchange_rate",), "exchange_rate must be absent or exactly 1 in the group's currency")
        return None
    return rate


def _payers(body: ExpenseIn, amount_minor: int, decimals: int) -> tuple[list[Entry], str]:
    if (body.paid_by is None) == (body.payers is None):
        raise invalid(("payers",), "give exactly one of paid_by or payers")
    if body.paid_by is not None:
        return [(body.paid_by, amount_minor)], "paid_by"
    assert body.payers is not None
    if len({p.user_id for p in body.payers}) != len(body.payers):
        raise invalid(("payers",), "payers must be distinct users")
    paid = []
    for i, p in enumerate(body.payers):
        try:
            paid.append((p.user_id, parse_amount(p.amount, decimals)))
        except MoneyError as exc:
            raise invalid(("payers", i, "amount"), f"amount {exc}") from None
    total = sum(a for _, a in paid)
    if total != amount_minor:
        shown, wanted = format_amount(total, decimals), format_amount(amount_minor, decimals)
        raise invalid(("payers",), f"payer amounts sum to {shown}, not {wanted}")
    return paid, "payers"


def _date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise invalid(("date",), "date must be a calendar date YYYY-MM-DD") from None
    if len(text) != 10 or not EARLIEST <= day <= LATEST:
        raise invalid(("date",), f"date must be a calendar date YYYY-MM-DD between {EARLIEST} and {LATEST}")
    return day


def _in_group_currency(
    parts: Sequence[Entry], *, rate: int | None, group_amount_minor: int
) -> tuple[Entry, ...]:
    if rate is None:
        return tuple(sorted(parts, key=lambda p: str(p[0])))
    return tuple(convert_parts(parts, group_amount_minor))


def draft_expense(body: ExpenseIn, group_currency: str) -> ExpenseDraft:
    """Validate a create/edit payload against the group's currency; 422 on any problem."""
    currency = body.currency or group_currency
    if not is_currency_code(currency):
        raise invalid(("currency",), f"{currency} is not an ISO 4217 currency code")
    rate = _rate(body, currency, group_currency)
    decimals, group_decimals = currency_decimals(currency), currency_decimals(group_currency)
    try:
        amount_minor = parse_amount(body.amount, decimals)
    except MoneyError as exc:
        raise invalid(("amount",), f"amount {exc}") from None
    paid, payer_field = _payers(body, amount_minor, decimals)
    ids = [p.user_id for p in body.participants]
    if len(set(ids)) != len(ids):
        raise invalid(("participants",), "participants must be distinct users")
    for i, p in enumerate(body.participants):
        _check_participant_fields(body.split_type, i, p)
    try:
        owed = _owed(body, amount_minor, decimals)
    except SplitError as exc:
        raise invalid(("participants",), str(exc)) from None
    group_amount = amount_minor
    if rate is not None:
        group_amount = convert_total(amount_minor, rate, from_decimals=decimals, to_decimals=group_decimals)
        if not 0 < group_amount <= MAX_MINOR:
            limit = format_amount(MAX_MINOR, group_decimals)
            raise invalid(("amount",), f"amount converts to {group_amount} minor units of {group_currency};"
                          f" it must be more than 0 and at most {limit}")  # fmt: skip
    return ExpenseDraft(
        description=body.description,
        currency=currency,
        amount_minor=amount_minor,
        exchange_rate=body.exchange_rate if rate is not None else None,
        group_amount_minor=group_amount,
        payers=_in_group_currency(paid, rate=rate, group_amount_minor=group_amount),
        payer_field=payer_field,
        split_type=body.split_type,
        owed=_in_group_currency(owed, rate=rate, group_amount_minor=group_amount),
        date=_date(body.date),
        category=body.category,
        notes=body.notes,
    )
