"""Discounts, coupons and stacking rules.

A discount computes how much comes off a set of cart lines.  A coupon wraps a
discount with validity dates, a minimum spend, a usage limit and an optional
promo condition written in the :mod:`cartcalc.rules` language.

Stacking: coupons marked ``stackable`` combine (at most ``max_stack`` of
them, largest first); a non-stackable coupon is exclusive.  The customer gets
whichever is worth more: the best exclusive coupon alone or the stack.  On a
tie the stack wins.  The total discount never exceeds the subtotal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Mapping, Optional, Protocol, Sequence

from .money import Money, min_money, sum_money, to_decimal
from .rules import compile_rule

DEFAULT_MAX_STACK = 3


class LineLike(Protocol):
    """What discounts need to know about a cart line."""

    @property
    def sku(self) -> str: ...

    @property
    def category(self) -> str: ...

    @property
    def unit_price(self) -> Money: ...

    @property
    def quantity(self) -> int: ...

    @property
    def total(self) -> Money: ...


class CouponError(ValueError):
    """A coupon cannot be created or redeemed."""


class Discount:
    """Base class: ``amount`` returns what comes off ``subtotal``."""

    def amount(self, lines: Sequence[LineLike], subtotal: Money) -> Money:
        raise NotImplementedError


@dataclass(frozen=True)
class PercentageDiscount(Discount):
    """``percent`` off the subtotal, or off one category's lines only."""

    percent: Decimal
    category: Optional[str] = None

    def __post_init__(self) -> None:
        pct = to_decimal(self.percent)
        if not Decimal(0) < pct <= Decimal(100):
            raise ValueError("percent must be in (0, 100]")
        object.__setattr__(self, "percent", pct)

    def amount(self, lines: Sequence[LineLike], subtotal: Money) -> Money:
        if self.category is None:
            base = subtotal
        else:
            base = sum_money(
                (line.total for line in lines if line.category == self.category),
                subtotal.currency,
            )
        return base.percent(self.percent)


@dataclass(frozen=True)
class FixedDiscount(Discount):
    """A fixed amount off, never more than the subtotal."""

    value: Money

    def __post_init__(self) -> None:
        if self.value.is_negative() or self.value.is_zero():
            raise ValueError("fixed discount must be positive")

    def amount(self, lines: Sequence[LineLike], subtotal: Money) -> Money:
        return min_money(self.value, subtotal)


@dataclass(frozen=True)
class BuyXGetYDiscount(Discount):
    """Buy ``buy`` units of ``sku``, get the next ``get`` units free.

    Units beyond complete groups are free once the customer has already
    paid for ``buy`` of them, e.g. buy 2 get 2 with 7 units: one full group
    (4 units, 2 free) plus 3 more of which 1 is free.
    """

    sku: str
    buy: int
    get: int

    def __post_init__(self) -> None:
        if self.buy < 1 or self.get < 1:
            raise ValueError("buy and get must be at least 1")

    def free_units(self, quantity: int) -> int:
        group = self.buy + self.get
        groups, rest = divmod(quantity, group)
        return groups * self.get + max(0, rest - self.buy)

    def amount(self, lines: Sequence[LineLike], subtotal: Money) -> Money:
        quantity = 0
        unit_price: Optional[Money] = None
        for line in lines:
            if line.sku == self.sku:
                quantity += line.quantity
                unit_price = line.unit_price
        if unit_price is None:
            return Money.zero(subtotal.currency)
        return unit_price * self.free_units(quantity)


@dataclass(frozen=True)
class TieredDiscount(Discount):
    """Percent off that grows with the subtotal.

    ``tiers`` is a sequence of ``(threshold, percent)`` with strictly
    increasing thresholds; the highest threshold reached applies.
    """

    tiers: tuple[tuple[Money, Decimal], ...]

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ValueError("at least one tier is required")
        previous: Optional[Money] = None
        for threshold, pct in self.tiers:
            if previous is not None and threshold <= previous:
                raise ValueError("tier thresholds must be strictly increasing")
            if not Decimal(0) < to_decimal(pct) <= Decimal(100):
                raise ValueError("tier percent must be in (0, 100]")
            previous = threshold

    def rate_for(self, subtotal: Money) -> Decimal:
        rate = Decimal(0)
        for threshold, pct in self.tiers:
            if subtotal >= threshold:
                rate = to_decimal(pct)
            else:
                break
        return rate

    def amount(self, lines: Sequence[LineLike], subtotal: Money) -> Money:
        return subtotal.percent(self.rate_for(subtotal))


@dataclass
class Coupon:
    """A redeemable code carrying a discount and the rules for using it."""

    code: str
    discount: Discount
    valid_from: Optional[date] = None
    valid_until: Optional[date] = None  # inclusive
    min_spend: Optional[Money] = None
    stackable: bool = False
    max_uses: Optional[int] = None
    uses: int = 0
    condition: Optional[str] = None
    _rule: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.code = self.code.strip().upper()
        if not self.code:
            raise CouponError("coupon code must not be empty")
        if (
            self.valid_from is not None
            and self.valid_until is not None
            and self.valid_from > self.valid_until
        ):
            raise CouponError(f"{self.code}: valid_from is after valid_until")
        if self.max_uses is not None and self.max_uses < 1:
            raise CouponError(f"{self.code}: max_uses must be at least 1")
        if self.condition is not None:
            self._rule = compile_rule(self.condition)

    def check(
        self,
        on: date,
        subtotal: Money,
        context: Optional[Mapping[str, Any]] = None,
    ) -> Optional[str]:
        """Return why the coupon cannot be used, or ``None`` if it can."""
        if self.valid_from is not None and on < self.valid_from:
            return "not yet valid"
        if self.valid_until is not None and on > self.valid_until:
            return "expired"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "usage limit reached"
        if self.min_spend is not None and subtotal < self.min_spend:
            return "minimum spend not met"
        if self._rule is not None and not self._rule.evaluate(context or {}):
            return "conditions not met"
        return None

    def is_valid(
        self,
        on: date,
        subtotal: Money,
        context: Optional[Mapping[str, Any]] = None,
    ) -> bool:
        return self.check(on, subtotal, context) is None

    def redeem(self) -> None:
        """Count one use of the coupon."""
        if self.max_uses is not None and self.uses >= self.max_uses:
            raise CouponError(f"{self.code}: usage limit reached")
        self.uses += 1


@dataclass(frozen=True)
class DiscountResult:
    total: Money
    applied: tuple[tuple[str, Money], ...]
    rejected: tuple[tuple[str, str], ...]

    @property
    def applied_codes(self) -> tuple[str, ...]:
        return tuple(code for code, _ in self.applied)


def best_discount(candidates: Sequence[tuple[str, Money]]) -> Optional[tuple[str, Money]]:
    """The largest ``(code, amount)``; ties go to the alphabetically first code."""
    best: Optional[tuple[str, Money]] = None
    for code, value in candidates:
        if best is None or value > best[1] or (value == best[1] and code < best[0]):
            best = (code, value)
    return best


def apply_coupons(
    coupons: Sequence[Coupon],
    lines: Sequence[LineLike],
    subtotal: Money,
    on: date,
    context: Optional[Mapping[str, Any]] = None,
    max_stack: int = DEFAULT_MAX_STACK,
) -> DiscountResult:
    """Decide which coupons apply and how much they take off in total."""
    rejected: list[tuple[str, str]] = []
    exclusive: list[tuple[str, Money]] = []
    stackable: list[tuple[str, Money]] = []
    seen: set[str] = set()

    for coupon in coupons:
        if coupon.code in seen:
            rejected.append((coupon.code, "duplicate code"))
            continue
        seen.add(coupon.code)
        reason = coupon.check(on, subtotal, context)
        if reason is not None:
            rejected.append((coupon.code, reason))
            continue
        value = min_money(coupon.discount.amount(lines, subtotal), subtotal)
        if value.is_zero():
            rejected.append((coupon.code, "nothing to discount"))
            continue
        (stackable if coupon.stackable else exclusive).append((coupon.code, value))

    stackable.sort(key=lambda item: (-item[1].amount, item[0]))
    stack = stackable[:max_stack]
    for code, _ in stackable[max_stack:]:
        rejected.append((code, "stack limit reached"))
    stack_total = sum_money((value for _, value in stack), subtotal.currency)

    best = best_discount(exclusive)
    if best is not None and best[1] > stack_total:
        applied = [best]
        losers = [code for code, _ in exclusive if code != best[0]]
        losers += [code for code, _ in stack]
    else:
        applied = list(stack)
        losers = [code for code, _ in exclusive]
    for code in losers:
        rejected.append((code, "a better offer applies"))

    total = sum_money((value for _, value in applied), subtotal.currency)
    total = min_money(total, subtotal)
    return DiscountResult(total, tuple(applied), tuple(rejected))
