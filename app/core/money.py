"""Pure money helpers: integer minor units inside, decimal strings on the wire.

Nothing here performs I/O; every function is deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from babel.core import get_global
from babel.numbers import get_currency_precision

MAX_MINOR = 10**12
"""Largest amount (in minor units) accepted anywhere in the ledger."""

_MAX_TEXT_LEN = 40
_MAX_DECIMALS = 18
MONEY_PATTERN = r"^(0|[1-9][0-9]*)(\.[0-9]+)?$"
"""The wire grammar of an amount (the contract's); parse_decimal enforces it."""
SIGNED_MONEY_PATTERN = MONEY_PATTERN.replace("^", "^-?", 1)
_DECIMAL_RE = re.compile(MONEY_PATTERN.strip("^$"), re.ASCII)
_CODE_RE = re.compile(r"[A-Z]{3}", re.ASCII)
_GRAMMAR_MSG = 'must be a decimal string like "12.34" (ASCII digits only, no sign, exponent, spaces or leading zeros)'


class MoneyError(ValueError):
    """An amount or currency is invalid; the message is safe to show to API clients."""


@lru_cache(maxsize=1)
def _active_currencies() -> frozenset[str]:
    """Codes that CLDR lists as current legal tender in at least one territory."""
    table: Mapping[str, list[tuple[str, object, object, bool]]] = get_global("territory_currencies")
    return frozenset(
        code for entries in table.values() for code, _start, end, tender in entries if end is None and tender
    )


def is_currency_code(code: str) -> bool:
    """True if ``code`` is an active ISO 4217 code known to Babel/CLDR (e.g. "USD")."""
    return isinstance(code, str) and _CODE_RE.fullmatch(code) is not None and code in _active_currencies()


@lru_cache(maxsize=512)
def _cached_decimals(code: str) -> int:
    return int(get_currency_precision(code))


_DECIMALS: dict[str, int] = {}  # the active codes asked for so far (at most CLDR's few hundred)


def currency_decimals(code: str) -> int:
    """Number of minor-unit decimals for ``code`` (USD 2, JPY 0, KWD 3)."""
    known = _DECIMALS.get(code) if type(code) is str else None
    if known is not None:
        return known
    if not is_currency_code(code):
        raise MoneyError('must be an active ISO 4217 currency code like "USD"')
    _DECIMALS[code] = decimals = _cached_decimals(code)
    return decimals


def _check_decimals(decimals: int) -> None:
    if isinstance(decimals, bool) or not isinstance(decimals, int):
        raise TypeError("decimals must be an int")
    if not 0 <= decimals <= _MAX_DECIMALS:
        raise ValueError(f"decimals must be between 0 and {_MAX_DECIMALS}")


def _too_many_decimals_msg(decimals: int) -> str:
    if decimals == 0:
        return "must be a whole number (this currency has no decimals)"
    return f"must have at most {decimals} decimal places"


def parse_decimal(text: object, decimals: int) -> int:
    """Parse a strict non-negative decimal string, scaled by ``10**decimals``.

    Grammar: ``^(0|[1-9][0-9]*)(\\.[0-9]+)?$`` over ASCII only, at most
    ``decimals`` fraction digits. No range check beyond the length guard.
    """
    _check_decimals(decimals)
    if not isinstance(text, str):
        raise MoneyError(_GRAMMAR_MSG)
    if len(text) > _MAX_TEXT_LEN or not text.isascii():
        raise MoneyError(_GRAMMAR_MSG)
    match = _DECIMAL_RE.fullmatch(text)
    if match is None:
        raise MoneyError(_GRAMMAR_MSG)
    whole, fraction = match.group(1), (match.group(2) or ".")[1:]
    if len(fraction) > decimals:
        raise MoneyError(_too_many_decimals_msg(decimals))
    scale: int = 10**decimals
    return int(whole) * scale + int(fraction.ljust(decimals, "0") or "0")


def parse_amount(text: object, decimals: int, *, allow_zero: bool = False) -> int:
    """Parse a wire amount such as "12.34" into minor units (1234 for decimals=2)."""
    minor = parse_decimal(text, decimals)
    if minor == 0 and not allow_zero:
        raise MoneyError("must be greater than zero")
    if minor > MAX_MINOR:
        raise MoneyError(f"must not exceed {format_amount(MAX_MINOR, decimals)}")
    return minor


_SCALES = tuple(10**d for d in range(_MAX_DECIMALS + 1))


def format_amount(minor: int, decimals: int) -> str:
    """Render minor units with exactly ``decimals`` decimals: (1050, 2) -> "10.50". (Called for every amount
    of every record an export streams: the checks are exact type tests, the scale a table lookup.)"""
    if type(decimals) is not int or not 0 <= decimals <= _MAX_DECIMALS:
        _check_decimals(decimals)
    if type(minor) is not int:
        raise TypeError("minor must be an int")
    if minor < 0:
        whole, fraction = divmod(-minor, _SCALES[decimals])
        sign = "-"
    else:
        whole, fraction = divmod(minor, _SCALES[decimals])
        sign = ""
    if decimals == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{decimals}d}"


AMOUNT_TEXTS_MAX = 4096
"""The most texts one currency's memo (AmountTexts) keeps; it starts again empty when full."""


class AmountTexts(dict[int, str]):
    """format_amount(minor, decimals) for one `decimals`, memoized: an export's amounts repeat (the prices,
    an equal split's parts), so most of its millions of amounts are one dict lookup: `texts[minor]`."""

    def __init__(self, decimals: int) -> None:
        super().__init__()
        _check_decimals(decimals)
        self.decimals = decimals

    def __missing__(self, minor: int) -> str:
        if len(self) >= AMOUNT_TEXTS_MAX:
            self.clear()
        text = self[minor] = format_amount(minor, self.decimals)
        return text


_AMOUNT_TEXTS = tuple(AmountTexts(d) for d in range(_MAX_DECIMALS + 1))


def amount_texts(code: str) -> AmountTexts:
    """The memoized wire texts of amounts in currency `code` (one memo per decimals, shared by the process)."""
    return _AMOUNT_TEXTS[currency_decimals(code)]
