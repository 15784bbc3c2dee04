"""Money: exact integer minor units of ISO 4217 currencies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paywire.domain.errors import ValidationError
from paywire.domain.money import ISO_EXPONENTS, Money

currencies = st.sampled_from(sorted(ISO_EXPONENTS))
amounts = st.integers(min_value=0, max_value=10**15)


@given(currencies, amounts)
def test_decimal_round_trip(currency: str, minor: int) -> None:
    """Formatting then parsing gives back the same minor units, for every currency."""
    m = Money(minor, currency)
    assert Money.parse(m.to_decimal(), currency) == m


@given(currencies, amounts, amounts, amounts)
def test_addition_is_exact(currency: str, a: int, b: int, c: int) -> None:
    """Addition is associative and commutative, and subtraction undoes it."""
    x, y, z = Money(a, currency), Money(b, currency), Money(c, currency)
    assert (x + y) + z == x + (y + z)
    assert x + y == y + x
    assert (x + y) - y == x


@given(currencies, amounts, st.integers(min_value=1, max_value=10_000))
def test_multiplication_by_quantity(currency: str, minor: int, qty: int) -> None:
    """unit × quantity equals repeated addition."""
    unit = Money(minor, currency)
    assert (unit * qty).minor == minor * qty


@pytest.mark.parametrize(("value", "currency", "minor"), [
    ("10.50", "USD", 1050), ("10.5", "USD", 1050), ("10", "USD", 1000), ("1500", "JPY", 1500),
    ("1.250", "KWD", 1250), ("0.001", "BHD", 1),
])
def test_parse_exponents(value: str, currency: str, minor: int) -> None:
    """Decimal strings parse by each currency's ISO exponent."""
    assert Money.parse(value, currency).minor == minor


@pytest.mark.parametrize(("value", "currency"), [
    ("10.001", "USD"), ("1.5", "JPY"), ("1.2345", "KWD"), ("-1.00", "USD"), ("1e3", "USD"),
    ("", "USD"), ("1.00", "XYZ"), ("1.00", "usd"),
])
def test_parse_refuses(value: str, currency: str) -> None:
    """Too many decimals, signs, exponents and unknown currencies are refused."""
    with pytest.raises(ValidationError):
        Money.parse(value, currency)


def test_no_floats_no_mixing() -> None:
    """Floats are not money, and currencies never mix."""
    with pytest.raises(ValidationError):
        Money(10.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Money(True, "USD")
    with pytest.raises(ValidationError):
        Money(100, "USD") + Money(100, "EUR")
