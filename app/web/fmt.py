"""Showing amounts and dates in the person's locale (Babel), from their Accept-Language.

Amounts are integer minor units everywhere; they become a Decimal with the currency's exponent only here,
to be shown (`$1,234.50`, `1.234,50 €`, `¥1,235`). Inputs never go through this module: forms take the
contract's money format ("1234.50") and the services parse it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency

from app.core.money import currency_decimals, format_amount

DEFAULT_LOCALE = "en_US"
_MAX_HEADER = 500
_MAX_TAGS = 10


@lru_cache(maxsize=256)
def _parse(tag: str) -> Locale | None:
    try:
        return Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return None


@lru_cache(maxsize=1024)
def negotiate(accept_language: str | None) -> Locale:
    """The first locale Babel knows from the header, by descending q; en_US when none (or no header)."""
    candidates: list[tuple[float, int, str]] = []
    for index, item in enumerate((accept_language or "")[:_MAX_HEADER].split(",")[:_MAX_TAGS]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and len(tag) <= 35 and tag.replace("-", "").replace("_", "").isalnum():
            candidates.append((-quality, index, tag))
    for negative_quality, _, tag in sorted(candidates):
        if negative_quality < 0:
            locale = _parse(tag)
            if locale is not None:
                return locale
    return Locale.parse(DEFAULT_LOCALE)


def money(minor: int, currency: str, locale: Locale) -> str:
    """Minor units of currency, as the locale writes money: 123450 USD → "$1,234.50" (en_US)."""
    amount = Decimal(minor).scaleb(-currency_decimals(currency))
    return str(format_currency(amount, currency, locale=locale))


def day(value: dt.date, locale: Locale) -> str:
    return str(format_date(value, format="medium", locale=locale))


def wire_amount(minor: int, currency: str) -> str:
    """Minor units in the contract's money format, for a form field ("1234.50")."""
    return format_amount(minor, currency_decimals(currency))
