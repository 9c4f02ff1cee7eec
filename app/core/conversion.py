"""Pure currency conversion of an expense into the group's currency, with explicit rounding.

A rate is a decimal string, group units per one unit of the expense currency, at most 9 integer and
10 fraction digits. The total converts half away from zero (amounts are positive, so half up):

    T = round_half_up(amount_minor x rate x 10^(dG - dE))

Then each part (a participant's owed amount, and separately a payer's paid amount) converts by the
largest remainder over T, proportional to its expense-currency amount, leftover minor units to the
largest fractional parts, ties by ascending user_id: the parts sum exactly to T, none is negative.
Integer arithmetic only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from uuid import UUID

from app.core.money import MAX_MINOR
from app.core.splits import Allocation, largest_remainder

RATE_DECIMALS = 10
RATE_SCALE: int = 10**RATE_DECIMALS
RATE_PATTERN = rf"^(0|[1-9][0-9]{{0,8}})(\.[0-9]{{1,{RATE_DECIMALS}}})?$"
_RATE_RE = re.compile(RATE_PATTERN.strip("^$"), re.ASCII)
ONE = RATE_SCALE  # a rate of exactly 1


class ConversionError(ValueError):
    """A rate or a converted amount is invalid; the message is safe to show to API clients."""


def parse_rate(text: object) -> int:
    """"1.0850" -> 10850000000 (the rate x 10^10); 422-worthy ConversionError unless 0 < rate."""
    if not isinstance(text, str) or len(text) > 21 or not text.isascii():
        raise ConversionError('must be a decimal string like "1.0850" (at most 9 digits, 10 decimals)')
    match = _RATE_RE.fullmatch(text)
    if match is None:
        raise ConversionError('must be a decimal string like "1.0850" (at most 9 digits, 10 decimals)')
    whole, fraction = match.group(1), (match.group(2) or ".")[1:]
    scaled = int(whole) * RATE_SCALE + int(fraction.ljust(RATE_DECIMALS, "0"))
    if scaled == 0:
        raise ConversionError("must be greater than 0")
    return scaled


def convert_total(amount_minor: int, rate_scaled: int, *, from_decimals: int, to_decimals: int) -> int:
    """round_half_up(amount_minor x rate x 10^(to - from)), in the target currency's minor units."""
    assert amount_minor > 0 and rate_scaled > 0
    numerator: int = amount_minor * rate_scaled * 10 ** max(0, to_decimals - from_decimals)
    denominator: int = RATE_SCALE * 10 ** max(0, from_decimals - to_decimals)
    total, remainder = divmod(numerator, denominator)
    return total + (1 if 2 * remainder >= denominator else 0)


def convert_parts(parts: Sequence[tuple[UUID, int]], total_minor: int) -> Allocation:
    """Each part in proportion to its amount, by largest remainder over total_minor (ties by
    ascending user_id); parts sum exactly to total_minor."""
    ordered = sorted(parts, key=lambda p: str(p[0]))
    assert ordered and all(amount >= 0 for _, amount in ordered) and sum(a for _, a in ordered) > 0
    assert 0 < total_minor <= MAX_MINOR
    result = largest_remainder(total_minor, ordered)
    assert sum(a for _, a in result) == total_minor and all(a >= 0 for _, a in result)
    return result
