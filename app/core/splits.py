"""Pure allocation of an expense total (integer minor units) among participants.

Canonical participant order is ascending ``str(user_id)``; every function
returns an :data:`Allocation` in that order. Integer arithmetic only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeGuard
from uuid import UUID

from app.core.money import MAX_MINOR, MoneyError, parse_decimal

Allocation = list[tuple[UUID, int]]

MAX_PARTICIPANTS = 200  # the contract's bound on an expense's participants
DEFAULT_MAX_PARTICIPANTS = MAX_PARTICIPANTS
PERCENT_DECIMALS = 4
PERCENT_SCALE = 10**PERCENT_DECIMALS
"""Percentages are integers in units of 10^-4 percent."""
PERCENTAGE_PATTERN = rf"^(0|[1-9][0-9]*)(\.[0-9]{{1,{PERCENT_DECIMALS}}})?$"
FULL_PERCENT = 100 * PERCENT_SCALE
MAX_SHARE = 10**6


class SplitError(ValueError):
    """A split request is invalid; the message is safe to show to API clients."""


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_total(total_minor: int) -> None:
    if not _is_int(total_minor) or not 1 <= total_minor <= MAX_MINOR:
        raise SplitError(f"total must be an integer between 1 and {MAX_MINOR} minor units")


def _sorted_ids(user_ids: Sequence[UUID], max_participants: int) -> list[UUID]:
    """Validate participant ids and return them in canonical order."""
    if len(user_ids) == 0:
        raise SplitError("at least one participant is required")
    if len(user_ids) > max_participants:
        raise SplitError(f"at most {max_participants} participants are allowed")
    if not all(isinstance(uid, UUID) for uid in user_ids):
        raise SplitError("participant ids must be UUIDs")
    if len(set(user_ids)) != len(user_ids):
        raise SplitError("participants must be distinct")
    return sorted(user_ids, key=str)


def _canonical(total_minor: int, entries: Sequence[tuple[UUID, int]], max_participants: int) -> list[tuple[UUID, int]]:
    """Validate total and ids; return the (id, value) pairs in canonical order."""
    _check_total(total_minor)
    ids = _sorted_ids([uid for uid, _ in entries], max_participants)
    values = dict(entries)
    return [(uid, values[uid]) for uid in ids]


def _check_positive(values: Iterable[object], noun: str, upper: int | None = None) -> None:
    for value in values:
        if not _is_int(value) or value <= 0:
            raise SplitError(f"each {noun} must be a positive integer")
        if upper is not None and value > upper:
            raise SplitError(f"each {noun} must be at most {upper}")


def _assert_allocation(result: Allocation, total_minor: int, count: int) -> Allocation:
    assert len(result) == count
    assert sum(part for _, part in result) == total_minor
    assert all(part >= 0 for _, part in result)
    return result


def largest_remainder(total_minor: int, weights: list[tuple[UUID, int]]) -> Allocation:
    """Floor each exact share, then hand leftover units to the largest remainders.

    ``weights`` must already be validated and in canonical order; remainder
    ties go to the smaller ``str(user_id)``.
    """
    weight_sum = sum(weight for _, weight in weights)
    floors_rems = [divmod(total_minor * weight, weight_sum) for _, weight in weights]
    leftover = total_minor - sum(floor for floor, _ in floors_rems)
    ranked = sorted(range(len(weights)), key=lambda i: (-floors_rems[i][1], i))
    bonus = set(ranked[:leftover])
    return [(uid, floors_rems[i][0] + (1 if i in bonus else 0)) for i, (uid, _) in enumerate(weights)]


def split_equal(
    total_minor: int,
    user_ids: Sequence[UUID],
    *,
    max_participants: int = DEFAULT_MAX_PARTICIPANTS,
) -> Allocation:
    """Everyone owes floor(total/n); the remainder goes 1 each to the first ids."""
    _check_total(total_minor)
    ids = _sorted_ids(user_ids, max_participants)
    base, extra = divmod(total_minor, len(ids))
    result = [(uid, base + (1 if i < extra else 0)) for i, uid in enumerate(ids)]
    return _assert_allocation(result, total_minor, len(ids))


def split_weighted(
    total_minor: int,
    weights: Sequence[tuple[UUID, int]],
    *,
    max_participants: int = DEFAULT_MAX_PARTICIPANTS,
) -> Allocation:
    """Largest-remainder split by positive integer weights."""
    entries = _canonical(total_minor, weights, max_participants)
    _check_positive((weight for _, weight in entries), "weight")
    result = largest_remainder(total_minor, entries)
    return _assert_allocation(result, total_minor, len(entries))


def _render_percentage(scaled: int) -> str:
    whole, fraction = divmod(scaled, PERCENT_SCALE)
    digits = f"{fraction:04d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def parse_percentage(text: object) -> int:
    """Parse "33.33" (max 4 decimals, 0 < p <= 100) into 10^-4 units: 333300."""
    try:
        scaled = parse_decimal(text, PERCENT_DECIMALS)
    except MoneyError as exc:
        raise SplitError(f"percentage {exc}") from None
    if not 0 < scaled <= FULL_PERCENT:
        raise SplitError("percentage must be greater than 0 and at most 100")
    return scaled


def split_percentage(
    total_minor: int,
    percentages: Sequence[tuple[UUID, int]],
    *,
    max_participants: int = DEFAULT_MAX_PARTICIPANTS,
) -> Allocation:
    """Split by percentages (10^-4 units) that sum to exactly 100."""
    entries = _canonical(total_minor, percentages, max_participants)
    _check_positive((pct for _, pct in entries), "percentage", FULL_PERCENT)
    pct_sum = sum(pct for _, pct in entries)
    if pct_sum != FULL_PERCENT:
        got = _render_percentage(pct_sum)
        raise SplitError(f"percentages must sum to exactly 100 (got {got})")
    result = largest_remainder(total_minor, entries)
    return _assert_allocation(result, total_minor, len(entries))


def split_shares(
    total_minor: int,
    shares: Sequence[tuple[UUID, int]],
    *,
    max_participants: int = DEFAULT_MAX_PARTICIPANTS,
) -> Allocation:
    """Split by positive integer shares (each at most 10^6)."""
    entries = _canonical(total_minor, shares, max_participants)
    _check_positive((share for _, share in entries), "share", MAX_SHARE)
    result = largest_remainder(total_minor, entries)
    return _assert_allocation(result, total_minor, len(entries))


def split_exact(
    total_minor: int,
    amounts: Sequence[tuple[UUID, int]],
    *,
    max_participants: int = DEFAULT_MAX_PARTICIPANTS,
) -> Allocation:
    """Explicit amounts in minor units (each >= 0) that must sum to the total."""
    entries = _canonical(total_minor, amounts, max_participants)
    for _, amount in entries:
        if not _is_int(amount) or amount < 0:
            raise SplitError("each exact amount must be a non-negative integer")
    amount_sum = sum(amount for _, amount in entries)
    if amount_sum != total_minor:
        raise SplitError(f"exact amounts must sum to the total of {total_minor} minor units (got {amount_sum})")
    return _assert_allocation(list(entries), total_minor, len(entries))
