"""The cart and its totals pipeline: subtotal -> discounts -> tax -> shipping."""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from typing import Any, Optional, Sequence

from .catalog import Catalog, OutOfStockError, Product
from .discounts import Coupon, apply_coupons
from .money import Money, sum_money
from .shipping import DEFAULT_SHIPPING, ShippingPolicy
from .tax import DEFAULT_TAX_TABLE, TaxLine, TaxTable, compute_tax

MAX_LINE_QUANTITY = 99


class CartError(ValueError):
    """An invalid change to the cart."""


@dataclass
class LineItem:
    product: Product
    quantity: int

    @property
    def sku(self) -> str:
        return self.product.sku

    @property
    def category(self) -> str:
        return self.product.category

    @property
    def unit_price(self) -> Money:
        return self.product.price

    @property
    def total(self) -> Money:
        return self.product.price * self.quantity

    @property
    def weight_grams(self) -> int:
        return self.product.weight_grams * self.quantity


@dataclass(frozen=True)
class Totals:
    subtotal: Money
    discount: Money
    tax: Money
    shipping: Money
    total: Money
    applied_codes: tuple[str, ...] = ()
    rejected: tuple[tuple[str, str], ...] = ()
    tax_lines: tuple[TaxLine, ...] = ()


class Cart:
    """Line items keyed by SKU, in the order they were first added."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.currency = catalog.currency
        self._lines: dict[str, LineItem] = {}

    # -- editing ------------------------------------------------------
    def _check_quantity(self, sku: str, quantity: int) -> None:
        if quantity > MAX_LINE_QUANTITY:
            raise CartError(f"at most {MAX_LINE_QUANTITY} units of {sku} per order")
        available = self.catalog.available(sku)
        if quantity > available:
            raise OutOfStockError(f"{sku}: wanted {quantity}, only {available} available")

    def add(self, sku: str, quantity: int = 1) -> LineItem:
        """Add units; adding an SKU that is already in the cart raises its quantity."""
        if quantity <= 0:
            raise CartError("quantity must be positive")
        product = self.catalog.get(sku)
        if not product.active:
            raise CartError(f"{sku} is no longer sold")
        line = self._lines.get(sku)
        new_quantity = quantity if line is None else line.quantity + quantity
        self._check_quantity(sku, new_quantity)
        if line is None:
            line = self._lines[sku] = LineItem(product, new_quantity)
        else:
            line.quantity = new_quantity
        return line

    def set_quantity(self, sku: str, quantity: int) -> None:
        """Change a line's quantity; zero removes the line."""
        if quantity < 0:
            raise CartError("quantity must not be negative")
        if sku not in self._lines:
            raise CartError(f"{sku} is not in the cart")
        if quantity == 0:
            self.remove(sku)
            return
        self._check_quantity(sku, quantity)
        self._lines[sku].quantity = quantity

    def remove(self, sku: str) -> None:
        try:
            del self._lines[sku]
        except KeyError:
            raise CartError(f"{sku} is not in the cart") from None

    def clear(self) -> None:
        self._lines.clear()

    # -- inspection ---------------------------------------------------
    @property
    def lines(self) -> list[LineItem]:
        return list(self._lines.values())

    def is_empty(self) -> bool:
        return not self._lines

    def item_count(self) -> int:
        return sum(line.quantity for line in self._lines.values())

    def weight_grams(self) -> int:
        return sum(line.weight_grams for line in self._lines.values())

    def subtotal(self) -> Money:
        return sum_money((line.total for line in self._lines.values()), self.currency)

    def categories(self) -> list[str]:
        return sorted({line.category for line in self._lines.values()})

    def rule_context(self, region: Optional[str] = None) -> dict[str, Any]:
        """Names available to coupon conditions."""
        categories = self.categories()
        if len(categories) == 1:
            category = categories[0]
        else:
            category = "mixed" if categories else ""
        return {
            "total": self.subtotal(),
            "items": self.item_count(),
            "lines": len(self._lines),
            "categories": categories,
            "category": category,
            "skus": list(self._lines),
            "weight": self.weight_grams(),
            "region": region or "",
        }

    # -- pricing ------------------------------------------------------
    def totals(
        self,
        *,
        on: date,
        region: str,
        coupons: Sequence[Coupon] = (),
        tax_table: TaxTable = DEFAULT_TAX_TABLE,
        shipping: ShippingPolicy = DEFAULT_SHIPPING,
        prices_include_tax: bool = False,
    ) -> Totals:
        """Price the cart.

        The discount is spread over the lines in proportion to their value
        so that each category is taxed on what the customer really pays.
        Free shipping is judged on the discounted subtotal.  Shipping itself
        is not taxed.
        """
        zero = Money.zero(self.currency)
        subtotal = self.subtotal()
        if self.is_empty():
            return Totals(zero, zero, zero, zero, zero)

        lines = self.lines
        result = apply_coupons(
            coupons, lines, subtotal, on, self.rule_context(region)
        )
        discount = result.total
        if discount.is_zero():
            shares = [zero] * len(lines)
        else:
            shares = discount.allocate([line.total.amount for line in lines])

        by_category: dict[str, Money] = {}
        for line, share in zip(lines, shares):
            net = line.total - share
            by_category[line.category] = by_category.get(line.category, zero) + net

        tax, tax_lines = compute_tax(
            tax_table, region, by_category, prices_include_tax, self.currency
        )
        discounted = subtotal - discount
        shipping_cost = shipping.cost(self.weight_grams(), discounted)
        total = discounted + shipping_cost
        if not prices_include_tax:
            total = total + tax
        return Totals(
            subtotal=subtotal,
            discount=discount,
            tax=tax,
            shipping=shipping_cost,
            total=total,
            applied_codes=result.applied_codes,
            rejected=result.rejected,
            tax_lines=tuple(tax_lines),
        )

    def checkout(self, **kwargs: Any) -> Totals:
        """Price the cart, take the stock, count coupon uses and empty the cart.

        Stock for every line is reserved inside one ``ExitStack``: if any line
        cannot be reserved, the reservations already made are released and
        nothing is sold.  Accepts the same keyword arguments as :meth:`totals`.
        """
        if self.is_empty():
            raise CartError("cannot check out an empty cart")
        totals = self.totals(**kwargs)
        with ExitStack() as stack:
            for line in self.lines:
                stack.enter_context(self.catalog.reservation(line.sku, line.quantity))
        by_code = {coupon.code: coupon for coupon in kwargs.get("coupons", ())}
        for code in totals.applied_codes:
            by_code[code].redeem()
        self.clear()
        return totals
