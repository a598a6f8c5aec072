"""Tax rates by region and category; inclusive and exclusive prices.

Rates are percentages.  A rate for ``(region, "*")`` is the region's
standard rate, used for any category without its own entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping

from .money import Money, quantize, sum_money

DEFAULT_CATEGORY = "*"


class UnknownRegionError(KeyError):
    """No tax rate is configured for the region."""


@dataclass(frozen=True)
class TaxLine:
    """Tax due for one category of goods."""

    category: str
    base: Money
    rate: Decimal
    tax: Money


@dataclass(frozen=True)
class TaxTable:
    rates: Mapping[tuple[str, str], Decimal]
    exempt_categories: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for key, rate in self.rates.items():
            if rate < 0 or rate >= 100:
                raise ValueError(f"implausible tax rate {rate} for {key}")

    def regions(self) -> list[str]:
        return sorted({region for region, _ in self.rates})

    def rate(self, region: str, category: str) -> Decimal:
        """The percentage that applies to ``category`` in ``region``."""
        if region not in self.regions():
            raise UnknownRegionError(region)
        if category in self.exempt_categories:
            return Decimal(0)
        specific = self.rates.get((region, category))
        if specific is not None:
            return specific
        try:
            return self.rates[(region, DEFAULT_CATEGORY)]
        except KeyError:
            raise UnknownRegionError(f"{region} has no standard rate") from None


DEFAULT_TAX_TABLE = TaxTable(
    rates={
        ("DE", "*"): Decimal("19"),
        ("DE", "books"): Decimal("7"),
        ("DE", "food"): Decimal("7"),
        ("FR", "*"): Decimal("20"),
        ("FR", "books"): Decimal("5.5"),
        ("FR", "food"): Decimal("5.5"),
        ("UK", "*"): Decimal("20"),
        ("UK", "books"): Decimal("0"),
        ("US-OR", "*"): Decimal("0"),
    },
    exempt_categories=frozenset({"gift-cards"}),
)


def tax_on_net(net: Money, rate: Decimal) -> Money:
    """Tax to add on top of a tax-exclusive amount."""
    return net.percent(rate)


def tax_in_gross(gross: Money, rate: Decimal) -> Money:
    """Tax contained in a tax-inclusive amount: ``gross - gross / (1 + rate)``."""
    if rate == 0:
        return Money.zero(gross.currency)
    net = gross.amount * 100 / (100 + rate)
    return Money(quantize(gross.amount - net), gross.currency)


def gross_from_net(net: Money, rate: Decimal) -> Money:
    return net + tax_on_net(net, rate)


def net_from_gross(gross: Money, rate: Decimal) -> Money:
    return gross - tax_in_gross(gross, rate)


def compute_tax(
    table: TaxTable,
    region: str,
    amounts_by_category: Mapping[str, Money],
    prices_include_tax: bool,
    currency: str = "EUR",
) -> tuple[Money, list[TaxLine]]:
    """Tax per category (sorted by category name) and the total.

    Tax is rounded once per category, not per unit, which is what most tax
    authorities expect on an invoice.
    """
    lines: list[TaxLine] = []
    for category in sorted(amounts_by_category):
        base = amounts_by_category[category]
        rate = table.rate(region, category)
        if prices_include_tax:
            tax = tax_in_gross(base, rate)
        else:
            tax = tax_on_net(base, rate)
        lines.append(TaxLine(category, base, rate, tax))
    total = sum_money((line.tax for line in lines), currency)
    return total, lines
