"""app.core.conversion: half-up totals and largest-remainder parts (pure, property-tested).

The oracle for the total is Python's Decimal with ROUND_HALF_UP on the decimal strings: no binary
floating point anywhere."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.conversion import ONE, ConversionError, convert_parts, convert_total, parse_rate

rates = st.builds(
    lambda whole, frac, digits: f"{whole}.{str(frac).zfill(digits)[:digits]}" if digits else str(whole),
    st.integers(0, 999_999_999),
    st.integers(0, 10**10 - 1),
    st.integers(0, 10),
).filter(lambda r: Decimal(r) > 0)
user_ids = st.uuids(version=4)


def _oracle(amount_minor: int, rate: str, dE: int, dG: int) -> int:
    exact = Decimal(amount_minor) * Decimal(rate) * (Decimal(10) ** (dG - dE))
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@given(st.integers(1, 10**12), rates, st.integers(0, 3), st.integers(0, 3))
def test_the_total_rounds_half_up_exactly(amount: int, rate: str, dE: int, dG: int) -> None:
    assert convert_total(amount, parse_rate(rate), from_decimals=dE, to_decimals=dG) == _oracle(amount, rate, dE, dG)


@given(st.lists(st.tuples(user_ids, st.integers(0, 10**12)), min_size=1, max_size=50, unique_by=lambda p: p[0])
       .filter(lambda ps: sum(a for _, a in ps) > 0), st.integers(1, 10**12))  # fmt: skip
def test_parts_sum_to_the_total_and_are_never_negative(parts: list[tuple[uuid.UUID, int]], total: int) -> None:
    result = convert_parts(parts, total)
    assert sum(a for _, a in result) == total
    assert all(a >= 0 for _, a in result)
    assert [u for u, _ in result] == sorted((u for u, _ in parts), key=str)
    whole = sum(a for _, a in parts)
    for (u, a), (_, got) in zip(sorted(parts, key=lambda p: str(p[0])), result, strict=True):
        exact = Decimal(a) * total / whole
        assert exact - 1 < got < exact + 1, (u, a, got, exact)  # within one minor unit of exact


def test_leftover_goes_to_the_largest_fraction_then_to_the_smaller_user_id() -> None:
    a, b, c = (uuid.UUID(int=i) for i in (1, 2, 3))
    # 3 equal parts of 100 over 200: 66.67 each -> one leftover unit to the smallest id.
    assert convert_parts([(c, 100), (a, 100), (b, 100)], 200) == [(a, 67), (b, 67), (c, 66)]
    # 10 and 20 over 4: 1.33 and 2.67 -> the larger fraction (b) gets the leftover.
    assert convert_parts([(a, 10), (b, 20)], 4) == [(a, 1), (b, 3)]


def test_a_zero_part_stays_zero() -> None:
    a, b = uuid.UUID(int=1), uuid.UUID(int=2)
    assert convert_parts([(a, 0), (b, 7)], 3) == [(a, 0), (b, 3)]


def test_yen_to_euro_and_back() -> None:
    # 1000 JPY at 0.0061 EUR/JPY = 6.10 EUR (610 cents); 10.00 EUR at 162.5 JPY/EUR = 1625 JPY.
    assert convert_total(1000, parse_rate("0.0061"), from_decimals=0, to_decimals=2) == 610
    assert convert_total(1000, parse_rate("162.5"), from_decimals=2, to_decimals=0) == 1625
    # half up: 0.005 EUR -> 0.01
    assert convert_total(1, parse_rate("0.5"), from_decimals=2, to_decimals=2) == 1


@pytest.mark.parametrize("bad", ["0", "0.0", "-1", "1e3", " 1", "1.", ".5", "01", "1234567890", "1.12345678901",
                                 "١", 1, None, ""])  # fmt: skip
def test_bad_rates_are_refused(bad: object) -> None:
    with pytest.raises(ConversionError):
        parse_rate(bad)


def test_rate_spellings_of_one() -> None:
    assert parse_rate("1") == parse_rate("1.0") == parse_rate("1.0000000000") == ONE
