"""Pure: reading a file's fields, reporting every fault at its row and field, never stopping at the first.

A fault is a FieldError whose path is the row then the field inside the request body (the edge adds
"body"): `(3, "Cost")` for a CSV record, `(12, "amount")` for an ihatemoney bill, `("expenses", 4,
"payers", 0, "amount")` inside a quits document. At most MAX_REPORTED faults are listed; the detail
counts them all.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from app.core.errors import DomainError, FieldError, Path
from app.core.money import MAX_MINOR, MoneyError, format_amount, parse_amount

MAX_REPORTED = 100
EARLIEST, LATEST = dt.date(1900, 1, 1), dt.date(2999, 12, 31)
T = TypeVar("T")


class Problems:
    """The faults found so far; check() raises one 422 listing them, when there are any."""

    def __init__(self) -> None:
        self.fields: list[FieldError] = []
        self.count = 0

    def add(self, path: Path, msg: str) -> None:
        self.count += 1
        if len(self.fields) < MAX_REPORTED:
            self.fields.append(FieldError(path, msg))

    def check(self) -> None:
        if self.count:
            first = self.fields[0]
            where = ".".join(str(p) for p in first.path) or "the body"
            detail = f"the file has {self.count} problem(s), nothing was imported; the first, at {where}: {first.msg}"
            raise DomainError("validation-error", detail, fields=self.fields)


def too_large(limit: int, what: str) -> DomainError:
    msg = f"the file has more than {limit} {what} (the import limit, IMPORT_MAX_ROWS)"
    return DomainError("validation-error", msg, fields=[FieldError((), msg)])


class Reader:
    """Reads the fields of one row; each fault is added to problems at path + (field,) and gives None."""

    def __init__(self, problems: Problems, path: Path) -> None:
        self.problems = problems
        self.path = path

    def fail(self, field: str | int | tuple[str | int, ...], msg: str) -> None:
        tail = field if isinstance(field, tuple) else (field,)
        self.problems.add((*self.path, *tail), msg)

    def attempt(self, field: str | int | tuple[str | int, ...], parse: Callable[[], T]) -> T | None:
        try:
            return parse()
        except (ValueError, TypeError) as exc:
            self.fail(field, str(exc))
            return None

    def text(
        self, value: Any, field: str | tuple[str | int, ...], *, max_len: int, optional: bool = False
    ) -> str | None:
        """A string of 1..max_len characters with a non-space one and no NUL (None allowed when optional)."""
        if value is None and optional:
            return None
        if not isinstance(value, str):
            self.fail(field, "must be a string" + (" or null" if optional else ""))
        elif not value.strip() or len(value) > max_len:
            self.fail(field, f"must have 1 to {max_len} characters, not only spaces")
        elif "\x00" in value:
            self.fail(field, "must not contain NUL (U+0000) characters")
        else:
            return value
        return None

    def uuid(self, value: Any, field: str) -> uuid.UUID | None:
        return self.attempt(field, lambda: parse_uuid(value))

    def money(self, value: Any, field: str | tuple[str | int, ...], decimals: int, *, zero: bool = False) -> int | None:
        """A wire amount ("12.30"): the money grammar, the currency's decimals, 0 < x <= 10^12 (0 if zero)."""
        try:
            return parse_amount(value, decimals, allow_zero=zero)
        except MoneyError as exc:
            self.fail(field, f"amount {exc}")
            return None

    def date(self, value: Any, field: str) -> dt.date | None:
        return self.attempt(field, lambda: parse_date(value))

    def timestamp(self, value: Any, field: str, *, optional: bool = False) -> dt.datetime | None:
        if value is None and optional:
            return None
        return self.attempt(field, lambda: parse_timestamp(value))

    def integer(self, value: Any, field: str, *, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(field, f"must be an integer from {low} to {high}")
            return None
        return value

    def items(self, value: Any, field: str, *, low: int, high: int) -> list[Any]:
        """A JSON array of low..high items ([] after a fault)."""
        if not isinstance(value, list) or not low <= len(value) <= high:
            self.fail(field, f"must be an array of {low} to {high} items")
            return []
        return value

    def mapping(self, value: Any, field: str | tuple[str | int, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(field, "must be an object")
            return {}
        return value


def parse_uuid(value: Any) -> uuid.UUID:
    if not isinstance(value, str) or len(value) != 36:
        raise ValueError("must be a UUID string")
    return uuid.UUID(value)


def parse_date(value: Any) -> dt.date:
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError("must be a date YYYY-MM-DD")
    day = dt.date.fromisoformat(value)
    if not EARLIEST <= day <= LATEST:
        raise ValueError(f"must be a date between {EARLIEST} and {LATEST}")
    return day


_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})", re.ASCII)


def parse_timestamp(value: Any) -> dt.datetime:
    if not isinstance(value, str) or len(value) > 40 or not _TIMESTAMP.fullmatch(value):
        raise ValueError("must be an RFC 3339 timestamp with its offset, e.g. 2026-11-30T12:00:00Z")
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)


_SIGNED = re.compile(r"(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?", re.ASCII)


def parse_signed(text: str, decimals: int) -> int:
    """A signed decimal string ("-3.5", "12", "0.00") in minor units, exactly (integers only); no exponent,
    no grouping, no leading zeros; digits past the currency's decimals only if they are zeros."""
    match = _SIGNED.fullmatch(text) if isinstance(text, str) and len(text) <= 40 else None
    if match is None:
        raise ValueError("must be a decimal number like -12.34")
    sign, whole, fraction = match.group(1), match.group(2), match.group(3) or ""
    if len(fraction) > decimals:
        if fraction[decimals:].strip("0"):
            raise ValueError(f"must have at most {decimals} decimal places")
        fraction = fraction[:decimals]
    minor: int = int(whole) * 10**decimals + int(fraction.ljust(decimals, "0") or "0")
    if minor > MAX_MINOR:
        raise ValueError(f"must be at most {format_amount(MAX_MINOR, decimals)} in size")
    return -minor if sign else minor


def parse_decimal_units(value: Decimal, decimals: int) -> int:
    """A Decimal (read from the file's own digits, never through a binary float) in minor units, exactly:
    it may have zeros past the currency's decimals ("1200.0" for a JPY amount), no other digit."""
    if not value.is_finite():
        raise ValueError("must be a finite number")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    whole, shift = int("".join(map(str, digits)) or "0"), exponent + decimals
    if shift > 20 or len(digits) > 40:
        raise ValueError(f"must be at most {format_amount(MAX_MINOR, decimals)} in size")
    minor: int
    if shift >= 0:
        minor = whole * 10**shift
    else:
        minor, rest = divmod(whole, 10**-shift)
        if rest:
            raise ValueError(f"must have at most {decimals} decimal places")
    if minor > MAX_MINOR:
        raise ValueError(f"must be at most {format_amount(MAX_MINOR, decimals)} in size")
    return -minor if sign else minor
