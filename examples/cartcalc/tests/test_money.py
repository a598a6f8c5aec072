from decimal import Decimal

import pytest

from cartcalc.money import (
    CurrencyMismatchError,
    Money,
    MoneyError,
    min_money,
    quantize,
    sum_money,
    to_decimal,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("1.005", "1.00"),  # half to even: down
        ("1.015", "1.02"),  # half to even: up
        ("1.025", "1.02"),
        ("2.675", "2.68"),
        ("-1.005", "-1.00"),
        ("0.004", "0.00"),
        ("7", "7.00"),
    ],
)
def test_rounds_half_even_to_cents(raw, expected):
    assert Money(raw).amount == Decimal(expected)
    assert str(Money(raw).amount) == expected


def test_quantize_helper():
    assert quantize(Decimal("0.125")) == Decimal("0.12")
    assert quantize(Decimal("0.135")) == Decimal("0.14")


def test_rejects_floats_bools_and_garbage():
    with pytest.raises(TypeError):
        Money(0.1)
    with pytest.raises(TypeError):
        to_decimal(True)
    with pytest.raises(MoneyError):
        Money("ten")
    with pytest.raises(MoneyError):
        Money("Infinity")
    with pytest.raises(MoneyError):
        Money("1", "XYZ")


def test_parse_and_str():
    m = Money.parse("  12.5 usd ")
    assert m == Money("12.50", "USD")
    assert str(m) == "12.50 USD"
    with pytest.raises(MoneyError):
        Money.parse("12.50")
    with pytest.raises(MoneyError):
        Money.parse("12.50 EUR extra")


def test_cents_round_trip():
    assert Money("12.34").cents == 1234
    assert Money("-0.07").cents == -7
    assert Money.from_cents(1999) == Money("19.99")
    assert Money.from_cents(-5, "GBP") == Money("-0.05", "GBP")
    with pytest.raises(TypeError):
        Money.from_cents(True)


def test_arithmetic():
    a, b = Money("10.10"), Money("0.95")
    assert a + b == Money("11.05")
    assert a - b == Money("9.15")
    assert b - a == Money("-9.15")
    assert -a == Money("-10.10")
    assert a * 3 == Money("30.30")
    assert 3 * b == Money("2.85")
    assert Money("0.10") * Decimal("0.5") == Money("0.05")
    assert Money("0.30") * Decimal("0.05") == Money("0.02")  # 0.015 -> 0.02


def test_multiplying_money_by_money_is_an_error():
    with pytest.raises(TypeError):
        Money("1") * Money("2")


def test_currency_mismatch():
    with pytest.raises(CurrencyMismatchError):
        Money("1", "EUR") + Money("1", "USD")
    with pytest.raises(CurrencyMismatchError):
        Money("1", "EUR") < Money("1", "USD")
    with pytest.raises(TypeError):
        Money("1") + 1


def test_comparisons():
    small, big = Money("4.99"), Money("5.00")
    assert small < big and not big < small
    assert small <= big and big <= Money("5")
    assert big > small and not small > big
    assert big >= small and big >= Money("5.00")
    assert not small >= big
    assert min_money(big, small) is small
    assert min_money(small, Money("4.99")) is small


def test_zero_and_sign():
    assert Money.zero("CHF") == Money("0", "CHF")
    assert Money("0.00").is_zero()
    assert not Money("0.01").is_zero()
    assert Money("-0.01").is_negative()
    assert not Money("0").is_negative()


@pytest.mark.parametrize(
    "amount, pct, expected",
    [
        ("200.00", "15", "30.00"),
        ("19.99", "10", "2.00"),
        ("0.25", "10", "0.02"),  # 0.025 -> 0.02 half even
        ("0.35", "10", "0.04"),  # 0.035 -> 0.04
        ("80.00", "12.5", "10.00"),
    ],
)
def test_percent(amount, pct, expected):
    assert Money(amount).percent(pct) == Money(expected)


@pytest.mark.parametrize(
    "amount, parts, expected",
    [
        ("100.00", 3, ["33.34", "33.33", "33.33"]),
        ("0.05", 3, ["0.02", "0.02", "0.01"]),
        ("10.00", 4, ["2.50", "2.50", "2.50", "2.50"]),
        ("0.01", 2, ["0.01", "0.00"]),
        ("-1.00", 3, ["-0.34", "-0.33", "-0.33"]),
    ],
)
def test_split(amount, parts, expected):
    result = Money(amount).split(parts)
    assert result == [Money(e) for e in expected]
    assert sum_money(result) == Money(amount)


def test_allocate_by_ratio_gives_leftover_to_largest_remainder():
    # 1.00 over 1:2:7 -> 0.10, 0.20, 0.70 exactly
    assert Money("1.00").allocate([1, 2, 7]) == [Money("0.10"), Money("0.20"), Money("0.70")]
    # 0.10 over 3:3:4 -> exact shares 0.03, 0.03, 0.04
    assert Money("0.10").allocate([3, 3, 4]) == [Money("0.03"), Money("0.03"), Money("0.04")]
    # 0.07 over 1:2 -> 2.333 / 4.667 cents: leftover cent goes to part 2
    assert Money("0.07").allocate([1, 2]) == [Money("0.02"), Money("0.05")]
    # 5.00 over 30.00 and 20.00 line values
    assert Money("5.00").allocate([Decimal("30.00"), Decimal("20.00")]) == [
        Money("3.00"),
        Money("2.00"),
    ]
    assert Money("1.00").allocate([0, 1]) == [Money("0.00"), Money("1.00")]


def test_allocate_rejects_bad_ratios():
    with pytest.raises(MoneyError):
        Money("1").allocate([])
    with pytest.raises(MoneyError):
        Money("1").allocate([0, 0])
    with pytest.raises(MoneyError):
        Money("1").allocate([2, -1])
    with pytest.raises(MoneyError):
        Money("1").split(0)


def test_sum_money():
    assert sum_money([]) == Money("0")
    assert sum_money([], "USD") == Money("0", "USD")
    assert sum_money([Money("1.10"), Money("2.20"), Money("3.30")]) == Money("6.60")
    with pytest.raises(CurrencyMismatchError):
        sum_money([Money("1", "USD")])
