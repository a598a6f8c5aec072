"""Decimal based money type.

Amounts are always stored rounded to whole cents using banker's rounding
(``ROUND_HALF_EVEN``).  Floats are rejected on purpose: ``0.1 + 0.2`` is not a
price anybody wants to charge.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Iterable, Sequence, Union

CENT = Decimal("0.01")
SUPPORTED_CURRENCIES = frozenset({"EUR", "USD", "GBP", "CHF"})

Number = Union[int, Decimal, str]


class MoneyError(ValueError):
    """Raised for invalid amounts, currencies or allocation requests."""


class CurrencyMismatchError(MoneyError):
    """Raised when two amounts in different currencies are combined."""


def to_decimal(value: Number) -> Decimal:
    """Convert ``value`` to a :class:`Decimal`, refusing floats and garbage."""
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(f"cannot use {type(value).__name__} as an amount")
    if isinstance(value, Decimal):
        result = value
    else:
        try:
            result = Decimal(value)
        except (InvalidOperation, TypeError, ValueError) as exc:
            raise MoneyError(f"invalid amount: {value!r}") from exc
    if not result.is_finite():
        raise MoneyError(f"amount must be finite: {value!r}")
    return result


def quantize(value: Decimal) -> Decimal:
    """Round ``value`` to whole cents, half to even."""
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Money:
    """An amount of money in a single currency, rounded to cents."""

    amount: Decimal
    currency: str = "EUR"

    def __post_init__(self) -> None:
        if self.currency not in SUPPORTED_CURRENCIES:
            raise MoneyError(f"unsupported currency: {self.currency!r}")
        object.__setattr__(self, "amount", quantize(to_decimal(self.amount)))

    # -- construction -------------------------------------------------
    @classmethod
    def zero(cls, currency: str = "EUR") -> "Money":
        """Return ``0.00`` in ``currency``."""
        return cls(Decimal(0), currency)

    @classmethod
    def from_cents(cls, cents: int, currency: str = "EUR") -> "Money":
        """Build an amount from an integer number of cents."""
        if not isinstance(cents, int) or isinstance(cents, bool):
            raise TypeError("cents must be an int")
        return cls(Decimal(cents).scaleb(-2), currency)

    @classmethod
    def parse(cls, text: str) -> "Money":
        """Parse ``"12.50 EUR"`` (amount, whitespace, currency code)."""
        parts = text.strip().split()
        if len(parts) != 2:
            raise MoneyError(f"expected '<amount> <currency>', got {text!r}")
        amount, currency = parts
        return cls(to_decimal(amount), currency.upper())

    # -- inspection ---------------------------------------------------
    @property
    def cents(self) -> int:
        """The amount as an integer number of cents."""
        return int(self.amount * 100)

    def is_zero(self) -> bool:
        return self.amount == 0

    def is_negative(self) -> bool:
        return self.amount < 0

    # -- arithmetic ---------------------------------------------------
    def _check(self, other: object) -> "Money":
        if not isinstance(other, Money):
            raise TypeError(f"expected Money, got {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(f"{self.currency} vs {other.currency}")
        return other

    def __add__(self, other: "Money") -> "Money":
        other = self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        other = self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> "Money":
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: Number) -> "Money":
        if isinstance(factor, Money):
            return NotImplemented
        return Money(self.amount * to_decimal(factor), self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: "Money") -> bool:
        return self.amount < self._check(other).amount

    def __le__(self, other: "Money") -> bool:
        return self.amount <= self._check(other).amount

    def __gt__(self, other: "Money") -> bool:
        return self.amount > self._check(other).amount

    def __ge__(self, other: "Money") -> bool:
        return self.amount >= self._check(other).amount

    def percent(self, pct: Number) -> "Money":
        """Return ``pct`` percent of this amount, rounded to cents."""
        return Money(self.amount * to_decimal(pct) / 100, self.currency)

    def allocate(self, ratios: Sequence[Number]) -> list["Money"]:
        """Split the amount proportionally to ``ratios`` without losing cents.

        Each part first gets the floor of its exact share; the cents left
        over go one by one to the parts with the largest remainders (ties
        go to the earlier part).  The parts always add up to ``self``.
        """
        if not ratios:
            raise MoneyError("cannot allocate over zero parts")
        weights = [to_decimal(r) for r in ratios]
        if any(w < 0 for w in weights):
            raise MoneyError("ratios must not be negative")
        total_weight = sum(weights, Decimal(0))
        if total_weight == 0:
            raise MoneyError("ratios must not all be zero")

        sign = -1 if self.is_negative() else 1
        cents = abs(self.cents)
        shares: list[int] = []
        remainders: list[Decimal] = []
        for weight in weights:
            exact = cents * weight
            shares.append(int(exact // total_weight))
            remainders.append(exact % total_weight)

        leftover = cents - sum(shares)
        order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
        for index in order[:leftover]:
            shares[index] += 1
        return [Money.from_cents(sign * share, self.currency) for share in shares]

    def split(self, parts: int) -> list["Money"]:
        """Split into ``parts`` near-equal amounts; earlier parts get the extra cents."""
        if parts <= 0:
            raise MoneyError("parts must be positive")
        return self.allocate([1] * parts)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def sum_money(items: Iterable[Money], currency: str = "EUR") -> Money:
    """Add up ``items``; an empty iterable gives zero in ``currency``."""
    total = Money.zero(currency)
    for item in items:
        total = total + item
    return total


def min_money(a: Money, b: Money) -> Money:
    """The smaller of two amounts in the same currency."""
    return a if a <= b else b
