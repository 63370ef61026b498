"""Fixed-point text: exact parsing and formatting, in the core and the twin."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastbook import DecodeError, FastbookError

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


@pytest.mark.parametrize(
    ("text", "decimals", "expected"),
    [
        (b"27431.50", 2, 2743150),
        ("27431.50", 2, 2743150),
        ("27431.5", 2, 2743150),
        ("0.00012000", 5, 12),
        ("0.00012000", 8, 12000),
        ("100", 2, 10000),
        ("100.", 2, 10000),
        (".5", 1, 5),
        ("-0.25", 2, -25),
        ("+7", 0, 7),
        ("-0", 3, 0),
        ("0", 0, 0),
        ("000000000000000000000000000001.5", 1, 15),
        ("1.000000000000000000000000000000", 0, 1),
        ("1e-5", 5, 1),
        ("1.5E+3", 0, 1500),
        ("2.5e-1", 2, 25),
        ("0e999999999", 2, 0),
        ("9223372036854775807", 0, INT64_MAX),
        ("-9223372036854775808", 0, INT64_MIN),
        ("92233720368.54775807", 8, INT64_MAX),
        ("1", 18, 10**18),
    ],
)
def test_parse_exact_values(impl, text, decimals, expected):
    assert impl.parse_decimal(text, decimals) == expected


@pytest.mark.parametrize(
    ("text", "decimals", "reason"),
    [
        ("", 2, "empty text"),
        (b"", 2, "empty text"),
        ("1.234", 2, "more decimal places"),
        ("0.000001", 5, "more decimal places"),
        ("1e-6", 5, "more decimal places"),
        ("9223372036854775808", 0, "out of int64 range"),
        ("-9223372036854775809", 0, "out of int64 range"),
        ("92233720368547758.08", 2, "out of int64 range"),
        ("10", 18, "out of int64 range"),
        ("1e30", 0, "out of int64 range"),
        ("99999999999999999999999", 0, "out of int64 range"),
        ("abc", 2, "not a decimal number"),
        (".", 2, "not a decimal number"),
        ("-", 2, "not a decimal number"),
        ("1.2.3", 2, "not a decimal number"),
        (" 1", 2, "not a decimal number"),
        ("1 ", 2, "not a decimal number"),
        ("1,000", 2, "not a decimal number"),
        ("1_000", 2, "not a decimal number"),
        ("1e", 2, "not a decimal number"),
        ("1e+", 2, "not a decimal number"),
        ("e5", 2, "not a decimal number"),
        ("nan", 2, "not a decimal number"),
        ("inf", 2, "not a decimal number"),
        ("--1", 2, "not a decimal number"),
        ("\u0661", 0, "not a decimal number"),  # ARABIC-INDIC DIGIT ONE is not ASCII
        (b"\xff", 0, "not a decimal number"),
    ],
)
def test_parse_rejects_with_named_input(impl, text, decimals, reason):
    with pytest.raises(DecodeError) as info:
        impl.parse_decimal(text, decimals)
    message = str(info.value)
    assert reason in message
    assert repr(text) in message, "the error must name the offending input"
    assert isinstance(info.value, FastbookError)
    assert isinstance(info.value, ValueError)


def test_parse_accepts_buffers(impl):
    assert impl.parse_decimal(bytearray(b"1.25"), 2) == 125
    assert impl.parse_decimal(memoryview(b"xx1.25")[2:], 2) == 125


def test_parse_rejects_non_text(impl):
    with pytest.raises(TypeError, match="str, bytes or a bytes-like"):
        impl.parse_decimal(1.25, 2)


@pytest.mark.parametrize("decimals", [-1, 19, 100])
def test_decimals_out_of_range(impl, decimals):
    with pytest.raises(ValueError, match="between 0 and 18"):
        impl.parse_decimal("1", decimals)
    with pytest.raises(ValueError, match="between 0 and 18"):
        impl.format_decimal(1, decimals)


@pytest.mark.parametrize(
    ("value", "decimals", "plain", "stripped"),
    [
        (2743150, 2, "27431.50", "27431.5"),
        (700, 2, "7.00", "7"),
        (5, 3, "0.005", "0.005"),
        (-5, 3, "-0.005", "-0.005"),
        (-50, 2, "-0.50", "-0.5"),
        (0, 4, "0.0000", "0"),
        (0, 0, "0", "0"),
        (12, 0, "12", "12"),
        (INT64_MAX, 0, "9223372036854775807", "9223372036854775807"),
        (INT64_MIN, 0, "-9223372036854775808", "-9223372036854775808"),
        (INT64_MIN, 18, "-9.223372036854775808", "-9.223372036854775808"),
        (10**18, 18, "1.000000000000000000", "1"),
    ],
)
def test_format(impl, value, decimals, plain, stripped):
    assert impl.format_decimal(value, decimals) == plain
    assert impl.format_decimal(value, decimals, strip=True) == stripped


@given(value=st.integers(INT64_MIN, INT64_MAX), decimals=st.integers(0, 18),
       strip=st.booleans())
def test_round_trip(impl, value, decimals, strip):
    text = impl.format_decimal(value, decimals, strip=strip)
    assert impl.parse_decimal(text, decimals) == value
    assert impl.parse_decimal(text.encode(), decimals) == value
    with localcontext() as ctx:
        ctx.prec = 100
        assert Decimal(text) == Decimal(value).scaleb(-decimals)


_text = st.text(alphabet="0123456789.+-eE", max_size=30) | st.from_regex(
    r"\A[+-]?[0-9]{0,22}(\.[0-9]{0,22})?([eE][+-]?[0-9]{1,3})?\Z", fullmatch=True
)


@given(text=_text, decimals=st.integers(0, 18))
def test_core_matches_twin_on_any_text(compiled, text, decimals):
    from fastbook import _pycore

    def outcome(mod):
        try:
            return ("ok", mod.parse_decimal(text, decimals))
        except DecodeError as exc:
            return ("error", str(exc))

    assert outcome(compiled) == outcome(_pycore)


@given(text=st.from_regex(r"\A[+-]?[0-9]{1,20}(\.[0-9]{0,20})?\Z", fullmatch=True),
       decimals=st.integers(0, 18))
def test_parse_agrees_with_decimal(impl, text, decimals):
    with localcontext() as ctx:
        ctx.prec = 100  # the default 28 digits would round long inputs
        exact = Decimal(text).scaleb(decimals)
    try:
        got = impl.parse_decimal(text, decimals)
    except DecodeError as exc:
        if "more decimal places" in str(exc):
            assert exact != exact.to_integral_value()
        else:
            assert "out of int64 range" in str(exc)
            assert not INT64_MIN <= int(exact) <= INT64_MAX
    else:
        assert Decimal(got) == exact
