"""Shipping cost by weight band, with a free-shipping threshold."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from .money import Money

GRAMS_PER_KG = 1000


class ShippingError(ValueError):
    """The parcel cannot be shipped under this policy."""


@dataclass(frozen=True)
class WeightBand:
    """Parcels up to and including ``max_grams`` cost ``price``."""

    max_grams: int
    price: Money


class ShippingPolicy:
    """Weight bands plus optional free-shipping threshold and per-kg surcharge.

    * Parcels weighing nothing (digital goods only) ship free.
    * Orders whose value reaches ``free_threshold`` ship free.
    * Parcels heavier than the last band pay the last band's price plus
      ``extra_per_kg`` for every started kilogram above it; without
      ``extra_per_kg`` they cannot be shipped.
    """

    def __init__(
        self,
        bands: Sequence[WeightBand],
        free_threshold: Optional[Money] = None,
        extra_per_kg: Optional[Money] = None,
        currency: str = "EUR",
    ) -> None:
        if not bands:
            raise ValueError("at least one weight band is required")
        ordered = sorted(bands, key=lambda band: band.max_grams)
        for previous, current in zip(ordered, ordered[1:]):
            if previous.max_grams == current.max_grams:
                raise ValueError(f"duplicate band for {current.max_grams} g")
        for band in ordered:
            if band.max_grams <= 0:
                raise ValueError("band limits must be positive")
            if band.price.currency != currency:
                raise ValueError("band priced in the wrong currency")
        self.bands = tuple(ordered)
        self.free_threshold = free_threshold
        self.extra_per_kg = extra_per_kg
        self.currency = currency

    def band_for(self, weight_grams: int) -> Optional[WeightBand]:
        """The first (lightest) band the parcel fits into, if any."""
        for band in self.bands:
            if weight_grams <= band.max_grams:
                return band
        return None

    def qualifies_for_free_shipping(self, order_value: Money) -> bool:
        return self.free_threshold is not None and order_value >= self.free_threshold

    def amount_to_free_shipping(self, order_value: Money) -> Optional[Money]:
        """How much more the customer must spend to ship free (``None`` if never)."""
        if self.free_threshold is None:
            return None
        if order_value >= self.free_threshold:
            return Money.zero(self.currency)
        return self.free_threshold - order_value

    def cost(self, weight_grams: int, order_value: Money) -> Money:
        if weight_grams < 0:
            raise ShippingError("weight must not be negative")
        if weight_grams == 0:
            return Money.zero(self.currency)
        if self.qualifies_for_free_shipping(order_value):
            return Money.zero(self.currency)
        band = self.band_for(weight_grams)
        if band is not None:
            return band.price
        if self.extra_per_kg is None:
            raise ShippingError(f"parcel of {weight_grams} g is too heavy")
        heaviest = self.bands[-1]
        excess = weight_grams - heaviest.max_grams
        started_kg = -(-excess // GRAMS_PER_KG)
        return heaviest.price + self.extra_per_kg * started_kg


DEFAULT_SHIPPING = ShippingPolicy(
    bands=[
        WeightBand(500, Money("4.90")),
        WeightBand(2000, Money("6.90")),
        WeightBand(10000, Money("12.90")),
    ],
    free_threshold=Money("50.00"),
    extra_per_kg=Money("1.50"),
)
