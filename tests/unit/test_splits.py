"""Unit tests for app.splits (pure; no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.money import MAX_MINOR
from app.core.splits import (
    Allocation,
    SplitError,
    parse_percentage,
    split_equal,
    split_exact,
    split_percentage,
    split_shares,
    split_weighted,
)

FAST = settings(max_examples=200, deadline=None)

PairSplit = Callable[[int, Sequence[tuple[UUID, int]]], Allocation]
PAIR_SPLITS: list[PairSplit] = [
    split_weighted,
    split_percentage,
    split_shares,
    split_exact,
]


def uid(n: int) -> UUID:
    return UUID(int=n)


A, B, C, D = uid(0xA), uid(0xB), uid(0xC), uid(0xD)


def parts(allocation: Allocation) -> list[int]:
    return [part for _, part in allocation]


def ids(allocation: Allocation) -> list[UUID]:
    return [user_id for user_id, _ in allocation]


def canonical(user_ids: Sequence[UUID]) -> list[UUID]:
    return sorted(user_ids, key=str)


def check_invariants(allocation: Allocation, total: int, user_ids: Sequence[UUID]) -> None:
    assert ids(allocation) == canonical(user_ids)
    assert sum(parts(allocation)) == total
    assert all(part >= 0 for part in parts(allocation))


# ---------------------------------------------------------------- examples


def test_equal_100_among_3_first_uuid_gets_extra_cent() -> None:
    result = split_equal(10000, [C, A, B])
    assert result == [(A, 3334), (B, 3333), (C, 3333)]


def test_equal_5_cents_among_7() -> None:
    people = [uid(n) for n in (7, 3, 5, 1, 6, 2, 4)]
    result = split_equal(5, people)
    assert result == [(uid(n), 1 if n <= 5 else 0) for n in range(1, 8)]


def test_equal_orders_by_uuid_string() -> None:
    low = UUID("0fffffff-ffff-ffff-ffff-ffffffffffff")
    high = UUID("a0000000-0000-0000-0000-000000000000")
    assert split_equal(3, [high, low]) == [(low, 2), (high, 1)]


def test_equal_single_participant_gets_everything() -> None:
    assert split_equal(MAX_MINOR, [A]) == [(A, MAX_MINOR)]


def test_percentage_12_5_and_87_5_of_10_minor() -> None:
    result = split_percentage(10, [(B, 875000), (A, 125000)])
    assert result == [(A, 1), (B, 9)]


def test_percentage_larger_fraction_beats_smaller_uuid() -> None:
    result = split_percentage(10, [(A, 875000), (B, 125000)])
    assert result == [(A, 9), (B, 1)]


def test_shares_1_2_of_1000() -> None:
    assert split_shares(1000, [(A, 1), (B, 2)]) == [(A, 333), (B, 667)]
    assert split_shares(1000, [(A, 2), (B, 1)]) == [(A, 667), (B, 333)]


def test_equal_shares_tie_goes_to_smallest_uuid() -> None:
    result = split_shares(100, [(C, 1), (B, 1), (A, 1)])
    assert result == [(A, 34), (B, 33), (C, 33)]


def test_weighted_ties_two_leftovers() -> None:
    result = split_weighted(5, [(D, 1), (C, 1), (B, 1), (A, 1)])
    assert result == [(A, 2), (B, 1), (C, 1), (D, 1)]


def test_weighted_leftover_by_remainder_then_uuid() -> None:
    # 10 * w / 9 -> 1.11, 2.22, 6.67: floors 1, 2, 6; leftover 1 goes to .67
    result = split_weighted(10, [(A, 1), (B, 2), (C, 6)])
    assert result == [(A, 1), (B, 2), (C, 7)]


def test_exact_allows_zero_parts() -> None:
    result = split_exact(1000, [(B, 0), (A, 1000)])
    assert result == [(A, 1000), (B, 0)]


# ---------------------------------------------------------------- parse_percentage


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("33.33", 333300),
        ("100", 1000000),
        ("100.0000", 1000000),
        ("12.5", 125000),
        ("87.5", 875000),
        ("0.0001", 1),
        ("33.3333", 333333),
        ("50", 500000),
    ],
)
def test_parse_percentage_valid(text: str, expected: int) -> None:
    assert parse_percentage(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "12.34567",
        "0.00001",
        "0",
        "0.0000",
        "100.0001",
        "101",
        "1000",
        "-5",
        "+5",
        "1e2",
        " 5",
        "5 ",
        "5%",
        "5.",
        ".5",
        "05",
        "NaN",
        "Infinity",
        "٥",
        "",
        12,
        12.5,
        True,
        None,
    ],
)
def test_parse_percentage_invalid(text: object) -> None:
    with pytest.raises(SplitError, match="percentage"):
        parse_percentage(text)


# ---------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    "pcts",
    [[500000, 499999], [500000, 500001], [1000000, 1], [333333, 333333, 333333]],
)
def test_percentage_must_sum_to_100(pcts: list[int]) -> None:
    entries = [(uid(i + 1), p) for i, p in enumerate(pcts)]
    with pytest.raises(SplitError, match=r"sum to exactly 100 \(got "):
        split_percentage(1000, entries)


def test_percentage_sum_message_renders_decimal() -> None:
    with pytest.raises(SplitError, match=r"\(got 99\.99\)"):
        split_percentage(1000, [(A, 500000), (B, 499900)])


@pytest.mark.parametrize("bad", [0, -500000, True, 50.0, "50"])
def test_percentage_rejects_bad_values(bad: object) -> None:
    with pytest.raises(SplitError):
        split_percentage(1000, [(A, bad), (B, 500000)])  # type: ignore[list-item]


@pytest.mark.parametrize("bad", [0, -1, True, False, 2.0, "2", 10**6 + 1])
def test_shares_rejects_bad_values(bad: object) -> None:
    with pytest.raises(SplitError, match="share"):
        split_shares(1000, [(A, bad), (B, 1)])  # type: ignore[list-item]


def test_shares_upper_bound_inclusive() -> None:
    result = split_shares(MAX_MINOR, [(A, 10**6), (B, 10**6)])
    assert parts(result) == [MAX_MINOR // 2, MAX_MINOR // 2]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "1"])
def test_weighted_rejects_bad_values(bad: object) -> None:
    with pytest.raises(SplitError, match="weight"):
        split_weighted(1000, [(A, bad), (B, 1)])  # type: ignore[list-item]


@pytest.mark.parametrize("amounts", [[500, 499], [500, 501], [0, 0], [1001, -1]])
def test_exact_rejects_mismatch_or_negative(amounts: list[int]) -> None:
    with pytest.raises(SplitError):
        split_exact(1000, [(A, amounts[0]), (B, amounts[1])])


@pytest.mark.parametrize("bad", [True, 1000.0, "1000"])
def test_exact_rejects_non_int(bad: object) -> None:
    with pytest.raises(SplitError, match="non-negative integer"):
        split_exact(1000, [(A, bad)])  # type: ignore[list-item]


def test_equal_rejects_duplicates_and_empty() -> None:
    with pytest.raises(SplitError, match="distinct"):
        split_equal(100, [A, B, A])
    with pytest.raises(SplitError, match="at least one"):
        split_equal(100, [])


@pytest.mark.parametrize("split", PAIR_SPLITS)
def test_pair_splits_reject_duplicates(split: PairSplit) -> None:
    with pytest.raises(SplitError, match="distinct"):
        split(1000, [(A, 500000), (A, 500000)])


@pytest.mark.parametrize("split", PAIR_SPLITS)
def test_pair_splits_reject_empty(split: PairSplit) -> None:
    with pytest.raises(SplitError, match="at least one"):
        split(1000, [])


@pytest.mark.parametrize("total", [0, -1, MAX_MINOR + 1, True])
def test_total_out_of_range(total: int) -> None:
    with pytest.raises(SplitError, match="total"):
        split_equal(total, [A])
    for split in PAIR_SPLITS:
        with pytest.raises(SplitError, match="total"):
            split(total, [(A, 1000000)])


def test_non_uuid_ids_rejected() -> None:
    with pytest.raises(SplitError, match="UUID"):
        split_equal(100, [str(A)])  # type: ignore[list-item]


def many(n: int) -> list[UUID]:
    return [uid(i + 1) for i in range(n)]


def test_participant_limit_for_equal() -> None:
    assert len(split_equal(1000, many(200))) == 200
    with pytest.raises(SplitError, match="at most 200"):
        split_equal(1000, many(201))
    with pytest.raises(SplitError, match="at most 2 "):
        split_equal(1000, many(3), max_participants=2)


def test_participant_limit_for_weighted_rules() -> None:
    for split in (split_weighted, split_shares):
        assert len(split(1000, [(u, 1) for u in many(200)])) == 200
        with pytest.raises(SplitError, match="at most 200"):
            split(1000, [(u, 1) for u in many(201)])
    pcts = [(u, 5000) for u in many(200)]
    assert len(split_percentage(1000, pcts)) == 200
    with pytest.raises(SplitError, match="at most 200"):
        split_percentage(1000, [(u, 5000) for u in many(201)])
    with pytest.raises(SplitError, match="at most 200"):
        split_exact(201, [(u, 1) for u in many(201)])
    with pytest.raises(SplitError, match="at most 1 "):
        split_exact(2, [(A, 1), (B, 1)], max_participants=1)


# ---------------------------------------------------------------- properties

ID_LISTS = st.lists(st.uuids(), min_size=1, max_size=25, unique=True)
TOTALS = st.one_of(st.integers(1, 100), st.integers(1, MAX_MINOR))


@FAST
@given(TOTALS, ID_LISTS, st.data())
def test_equal_properties(total: int, user_ids: list[UUID], data: st.DataObject) -> None:
    result = split_equal(total, user_ids)
    check_invariants(result, total, user_ids)
    amounts = parts(result)
    assert max(amounts) - min(amounts) <= 1
    assert amounts == sorted(amounts, reverse=True)  # extras go to the first ids
    shuffled = data.draw(st.permutations(user_ids))
    assert split_equal(total, shuffled) == result


def check_largest_remainder(result: Allocation, total: int, weights: dict[UUID, int]) -> None:
    """Each part is floor or floor+1 of its exact share; extras go to largest rems."""
    weight_sum = sum(weights.values())
    keyed = []
    for user_id, part in result:
        floor, rem = divmod(total * weights[user_id], weight_sum)
        assert abs(part * weight_sum - total * weights[user_id]) < weight_sum
        assert part - floor in (0, 1)
        keyed.append(((-rem, str(user_id)), part - floor))
    keyed.sort()
    bonuses = [bonus for _, bonus in keyed]
    assert bonuses == sorted(bonuses, reverse=True)


def check_pair_split(split: PairSplit, total: int, entries: list[tuple[UUID, int]], data: st.DataObject) -> Allocation:
    result = split(total, entries)
    check_invariants(result, total, [user_id for user_id, _ in entries])
    shuffled = data.draw(st.permutations(entries))
    assert split(total, shuffled) == result
    return result


@st.composite
def weighted_entries(draw: st.DrawFn, max_weight: int) -> list[tuple[UUID, int]]:
    user_ids = draw(ID_LISTS)
    weights = draw(
        st.lists(
            st.integers(1, max_weight),
            min_size=len(user_ids),
            max_size=len(user_ids),
        )
    )
    return list(zip(user_ids, weights, strict=True))


@FAST
@given(TOTALS, weighted_entries(10**9), st.data())
def test_weighted_properties(total: int, entries: list[tuple[UUID, int]], data: st.DataObject) -> None:
    result = check_pair_split(split_weighted, total, entries, data)
    check_largest_remainder(result, total, dict(entries))


@FAST
@given(TOTALS, weighted_entries(10**6), st.data())
def test_shares_properties(total: int, entries: list[tuple[UUID, int]], data: st.DataObject) -> None:
    result = check_pair_split(split_shares, total, entries, data)
    check_largest_remainder(result, total, dict(entries))


def partition(total: int, cuts: list[int]) -> list[int]:
    """Split ``total`` into len(cuts)+1 pieces at the sorted cut points."""
    points = [0, *sorted(cuts), total]
    return [high - low for low, high in pairwise(points)]


@st.composite
def percentage_entries(draw: st.DrawFn) -> list[tuple[UUID, int]]:
    cuts = draw(st.lists(st.integers(1, 999_999), max_size=24, unique=True))
    pcts = partition(1_000_000, cuts)
    user_ids = draw(st.lists(st.uuids(), min_size=len(pcts), max_size=len(pcts), unique=True))
    return list(zip(user_ids, pcts, strict=True))


@FAST
@given(TOTALS, percentage_entries(), st.data())
def test_percentage_properties(total: int, entries: list[tuple[UUID, int]], data: st.DataObject) -> None:
    result = check_pair_split(split_percentage, total, entries, data)
    check_largest_remainder(result, total, dict(entries))


@FAST
@given(TOTALS, st.data())
def test_exact_properties(total: int, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, total), max_size=24))
    amounts = partition(total, cuts)
    user_ids = data.draw(st.lists(st.uuids(), min_size=len(amounts), max_size=len(amounts), unique=True))
    entries = list(zip(user_ids, amounts, strict=True))
    result = check_pair_split(split_exact, total, entries, data)
    assert dict(result) == dict(entries)
