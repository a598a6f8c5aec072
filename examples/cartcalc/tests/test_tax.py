from decimal import Decimal

import pytest

from cartcalc.money import Money
from cartcalc.tax import (
    DEFAULT_TAX_TABLE,
    TaxLine,
    TaxTable,
    UnknownRegionError,
    compute_tax,
    gross_from_net,
    net_from_gross,
    tax_in_gross,
    tax_on_net,
)


@pytest.mark.parametrize(
    "region, category, rate",
    [
        ("DE", "electronics", "19"),
        ("DE", "books", "7"),
        ("FR", "books", "5.5"),
        ("FR", "toys", "20"),
        ("UK", "books", "0"),
        ("US-OR", "toys", "0"),
        ("DE", "gift-cards", "0"),
    ],
)
def test_rate_lookup(region, category, rate):
    assert DEFAULT_TAX_TABLE.rate(region, category) == Decimal(rate)


def test_unknown_region_and_missing_standard_rate():
    with pytest.raises(UnknownRegionError):
        DEFAULT_TAX_TABLE.rate("XX", "books")
    with pytest.raises(UnknownRegionError):
        DEFAULT_TAX_TABLE.rate("XX", "gift-cards")
    table = TaxTable({("IT", "books"): Decimal("4")})
    assert table.rate("IT", "books") == Decimal("4")
    with pytest.raises(UnknownRegionError):
        table.rate("IT", "toys")
    assert DEFAULT_TAX_TABLE.regions() == ["DE", "FR", "UK", "US-OR"]


def test_table_rejects_implausible_rates():
    with pytest.raises(ValueError):
        TaxTable({("DE", "*"): Decimal("-1")})
    with pytest.raises(ValueError):
        TaxTable({("DE", "*"): Decimal("100")})


@pytest.mark.parametrize(
    "net, rate, tax, gross",
    [
        ("100.00", "19", "19.00", "119.00"),
        ("9.99", "19", "1.90", "11.89"),  # 1.8981
        ("10.50", "7", "0.74", "11.24"),  # 0.735 -> 0.74 half even
        ("10.70", "5.5", "0.59", "11.29"),  # 0.5885
        ("42.00", "0", "0.00", "42.00"),
    ],
)
def test_exclusive(net, rate, tax, gross):
    assert tax_on_net(Money(net), Decimal(rate)) == Money(tax)
    assert gross_from_net(Money(net), Decimal(rate)) == Money(gross)


@pytest.mark.parametrize(
    "gross, rate, tax, net",
    [
        ("119.00", "19", "19.00", "100.00"),
        ("10.00", "19", "1.60", "8.40"),  # 1.5966
        ("10.70", "7", "0.70", "10.00"),
        ("5.00", "20", "0.83", "4.17"),  # 0.8333
        ("42.00", "0", "0.00", "42.00"),
    ],
)
def test_inclusive(gross, rate, tax, net):
    assert tax_in_gross(Money(gross), Decimal(rate)) == Money(tax)
    assert net_from_gross(Money(gross), Decimal(rate)) == Money(net)


def test_compute_tax_exclusive_per_category():
    total, lines = compute_tax(
        DEFAULT_TAX_TABLE,
        "DE",
        {"toys": Money("50.00"), "books": Money("20.00"), "gift-cards": Money("25.00")},
        prices_include_tax=False,
    )
    assert lines == [
        TaxLine("books", Money("20.00"), Decimal("7"), Money("1.40")),
        TaxLine("gift-cards", Money("25.00"), Decimal("0"), Money("0.00")),
        TaxLine("toys", Money("50.00"), Decimal("19"), Money("9.50")),
    ]
    assert total == Money("10.90")


def test_compute_tax_inclusive():
    total, lines = compute_tax(
        DEFAULT_TAX_TABLE,
        "FR",
        {"books": Money("10.55"), "toys": Money("12.00")},
        prices_include_tax=True,
    )
    assert [line.tax for line in lines] == [Money("0.55"), Money("2.00")]
    assert total == Money("2.55")


def test_compute_tax_empty_and_currency():
    total, lines = compute_tax(DEFAULT_TAX_TABLE, "DE", {}, False, "USD")
    assert total == Money("0", "USD")
    assert lines == []
