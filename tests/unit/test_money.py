"""Unit tests for app.money (pure; no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.money import (
    AMOUNT_TEXTS_MAX,
    MAX_MINOR,
    MoneyError,
    amount_texts,
    currency_decimals,
    format_amount,
    is_currency_code,
    parse_amount,
)

FAST = settings(max_examples=200, deadline=None)

VALID_PARSE: list[tuple[str, int, int]] = [
    ("12.34", 2, 1234),
    ("1.50", 2, 150),
    ("1.5", 2, 150),
    ("100", 2, 10000),
    ("0.01", 2, 1),
    ("0.5", 2, 50),
    ("10.05", 2, 1005),
    ("100", 0, 100),
    ("1", 0, 1),
    ("1.234", 3, 1234),
    ("1.5", 3, 1500),
    ("0.001", 3, 1),
    ("10000000000.00", 2, MAX_MINOR),
    ("10000000000", 2, MAX_MINOR),
    ("1000000000000", 0, MAX_MINOR),
    ("1000000000.000", 3, MAX_MINOR),
]


@pytest.mark.parametrize(("text", "decimals", "expected"), VALID_PARSE)
def test_parse_amount_valid(text: str, decimals: int, expected: int) -> None:
    assert parse_amount(text, decimals) == expected


INVALID_PARSE: list[tuple[object, int]] = [
    # grammar
    ("1e3", 2),
    ("1E3", 2),
    ("+1", 2),
    ("-1", 2),
    ("-0", 2),
    (" 1", 2),
    ("1 ", 2),
    ("1\n", 2),
    ("\t1", 2),
    ("1.", 2),
    (".5", 2),
    ("01", 2),
    ("00.5", 2),
    ("00", 2),
    ("1.2.3", 2),
    ("1,50", 2),
    ("1_000", 2),
    ("0x10", 2),
    ("", 2),
    (" ", 2),
    ("NaN", 2),
    ("nan", 2),
    ("Infinity", 2),
    ("inf", 2),
    ("-Infinity", 2),
    ("١", 2),  # ARABIC-INDIC DIGIT ONE
    ("١٢", 2),
    ("１", 2),  # FULLWIDTH DIGIT ONE
    ("1.٥", 2),
    ("²", 2),
    ("1" * 41, 2),
    # wrong type (JSON numbers etc.)
    (12, 2),
    (12.5, 2),
    (True, 2),
    (None, 2),
    (b"12", 2),
    # too many decimals
    ("1.234", 2),
    ("1.000", 2),
    ("1.5", 0),
    ("1.0", 0),
    ("1.2345", 3),
    ("0.0001", 3),
    # zero without allow_zero
    ("0", 2),
    ("0.00", 2),
    ("0", 0),
    ("0.000", 3),
    # above MAX_MINOR
    ("10000000000.01", 2),
    ("10000000001", 2),
    ("1000000000001", 0),
    ("1000000000.001", 3),
    ("99999999999999999999", 2),
]


@pytest.mark.parametrize(("text", "decimals"), INVALID_PARSE)
def test_parse_amount_invalid(text: object, decimals: int) -> None:
    with pytest.raises(MoneyError):
        parse_amount(text, decimals)


@pytest.mark.parametrize("decimals", [0, 2, 3])
def test_max_minor_is_inclusive(decimals: int) -> None:
    limit = format_amount(MAX_MINOR, decimals)
    above = format_amount(MAX_MINOR + 1, decimals)
    assert parse_amount(limit, decimals) == MAX_MINOR
    with pytest.raises(MoneyError, match="must not exceed"):
        parse_amount(above, decimals)


@pytest.mark.parametrize(("text", "decimals"), [("0", 2), ("0.00", 2), ("0", 0)])
def test_zero_allowed_only_when_requested(text: str, decimals: int) -> None:
    assert parse_amount(text, decimals, allow_zero=True) == 0
    with pytest.raises(MoneyError, match="greater than zero"):
        parse_amount(text, decimals)


def test_error_messages_are_human_readable() -> None:
    with pytest.raises(MoneyError, match="decimal string"):
        parse_amount("1e3", 2)
    with pytest.raises(MoneyError, match="at most 2 decimal places"):
        parse_amount("1.234", 2)
    with pytest.raises(MoneyError, match="whole number"):
        parse_amount("1.5", 0)


def test_money_error_is_value_error() -> None:
    assert issubclass(MoneyError, ValueError)


@pytest.mark.parametrize("decimals", [-1, 19])
def test_invalid_decimals_argument(decimals: int) -> None:
    with pytest.raises(ValueError, match="decimals"):
        parse_amount("1", decimals)
    with pytest.raises(ValueError, match="decimals"):
        format_amount(1, decimals)


FORMAT_CASES: list[tuple[int, int, str]] = [
    (1050, 2, "10.50"),
    (5, 2, "0.05"),
    (-5, 2, "-0.05"),
    (-1050, 2, "-10.50"),
    (100, 0, "100"),
    (-100, 0, "-100"),
    (0, 0, "0"),
    (1500, 3, "1.500"),
    (1, 3, "0.001"),
    (0, 2, "0.00"),
    (MAX_MINOR, 2, "10000000000.00"),
    (10**30 + 1, 2, "10000000000000000000000000000.01"),
]


@pytest.mark.parametrize(("minor", "decimals", "expected"), FORMAT_CASES)
def test_format_amount(minor: int, decimals: int, expected: str) -> None:
    assert format_amount(minor, decimals) == expected


@pytest.mark.parametrize("minor", [True, 1.0, "1"])
def test_format_amount_rejects_non_int(minor: object) -> None:
    with pytest.raises(TypeError):
        format_amount(minor, 2)  # type: ignore[arg-type]


@FAST
@given(st.integers(0, MAX_MINOR), st.sampled_from([0, 2, 3]))
def test_round_trip(minor: int, decimals: int) -> None:
    text = format_amount(minor, decimals)
    assert parse_amount(text, decimals, allow_zero=True) == minor


@FAST
@given(st.integers(-MAX_MINOR, MAX_MINOR), st.sampled_from([0, 2, 3]))
def test_format_shape(minor: int, decimals: int) -> None:
    text = format_amount(minor, decimals)
    assert text.startswith("-") == (minor < 0)
    assert "+" not in text
    fraction = text.partition(".")[2]
    assert len(fraction) == decimals


@FAST
@given(
    st.one_of(
        st.text(max_size=45),
        st.from_regex(r"[0-9.]{1,16}", fullmatch=True),
    ),
    st.sampled_from([0, 2, 3]),
)
def test_parse_is_strict_or_exact(text: str, decimals: int) -> None:
    """Any accepted string is canonical up to trailing zeros; else MoneyError."""
    try:
        minor = parse_amount(text, decimals, allow_zero=True)
    except MoneyError:
        return
    whole, _, fraction = text.partition(".")
    expected = whole if decimals == 0 else f"{whole}.{fraction.ljust(decimals, '0')}"
    assert format_amount(minor, decimals) == expected


@pytest.mark.parametrize(
    ("code", "decimals"),
    [("USD", 2), ("JPY", 0), ("KWD", 3), ("EUR", 2), ("GBP", 2), ("BHD", 3)],
)
def test_currency_decimals(code: str, decimals: int) -> None:
    assert is_currency_code(code)
    assert currency_decimals(code) == decimals
    assert currency_decimals(code) == decimals  # cached path


@pytest.mark.parametrize(
    "code",
    [
        "usd",
        "Usd",
        "US",
        "USDD",
        "XYZ",
        "",
        " USD",
        "USD ",
        "ＵＳＤ",
        "DEM",
        "XXX",
        "XTS",
    ],
)
def test_invalid_currency_codes(code: str) -> None:
    assert not is_currency_code(code)
    with pytest.raises(MoneyError, match="ISO 4217"):
        currency_decimals(code)


@pytest.mark.parametrize("code", [None, 840, b"USD", ["USD"]])
def test_non_string_currency_codes(code: object) -> None:
    assert not is_currency_code(code)  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        currency_decimals(code)  # type: ignore[arg-type]


@given(st.lists(st.tuples(st.sampled_from(["USD", "JPY", "KWD"]), st.integers(-(10**12), 10**12)), max_size=50))
def test_amount_texts_are_format_amount(asked: list[tuple[str, int]]) -> None:
    for code, minor in asked:
        assert amount_texts(code)[minor] == format_amount(minor, currency_decimals(code))


def test_amount_texts_stay_bounded() -> None:
    texts = amount_texts("USD")
    for minor in range(AMOUNT_TEXTS_MAX + 10):
        assert texts[minor] == format_amount(minor, 2)
    assert 0 < len(texts) <= AMOUNT_TEXTS_MAX
    assert texts[123_456] == "1234.56"
