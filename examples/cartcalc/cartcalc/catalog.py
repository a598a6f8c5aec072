"""Products, SKUs, stock levels and reservations."""
from __future__ import annotations

import string
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

from .money import Money

SKU_PREFIX_MIN = 2
SKU_PREFIX_MAX = 4
SKU_NUMBER_MIN = 3
SKU_NUMBER_MAX = 6


class CatalogError(Exception):
    """Base class for catalog problems."""


class InvalidSkuError(CatalogError, ValueError):
    """The SKU does not look like ``AB-123``."""


class UnknownProductError(CatalogError, KeyError):
    """No product with that SKU."""


class DuplicateProductError(CatalogError):
    """A product with that SKU already exists."""


class OutOfStockError(CatalogError):
    """Not enough unreserved stock."""


def validate_sku(sku: str) -> str:
    """Return ``sku`` if it is 2-4 uppercase ASCII letters, '-', 3-6 digits."""
    prefix, sep, number = sku.partition("-")
    if not sep:
        raise InvalidSkuError(f"missing '-' in SKU {sku!r}")
    if not SKU_PREFIX_MIN <= len(prefix) <= SKU_PREFIX_MAX:
        raise InvalidSkuError(f"bad prefix length in SKU {sku!r}")
    if any(ch not in string.ascii_uppercase for ch in prefix):
        raise InvalidSkuError(f"prefix must be uppercase letters: {sku!r}")
    if not SKU_NUMBER_MIN <= len(number) <= SKU_NUMBER_MAX:
        raise InvalidSkuError(f"bad number length in SKU {sku!r}")
    if any(ch not in string.digits for ch in number):
        raise InvalidSkuError(f"number part must be digits: {sku!r}")
    return sku


@dataclass(frozen=True)
class Product:
    """A sellable item.  ``weight_grams == 0`` marks digital goods."""

    sku: str
    name: str
    price: Money
    category: str
    weight_grams: int = 0
    active: bool = True

    def __post_init__(self) -> None:
        validate_sku(self.sku)
        if not self.name.strip():
            raise ValueError("product name must not be empty")
        if self.price.is_negative():
            raise ValueError("price must not be negative")
        if self.weight_grams < 0:
            raise ValueError("weight must not be negative")


class Catalog:
    """Products plus stock bookkeeping.

    ``stock`` is what is physically on the shelf; ``reserved`` is what open
    checkouts have put aside.  Only ``stock - reserved`` can be sold.
    """

    def __init__(self, currency: str = "EUR") -> None:
        self.currency = currency
        self._products: dict[str, Product] = {}
        self._stock: dict[str, int] = {}
        self._reserved: dict[str, int] = {}

    def add_product(self, product: Product, stock: int = 0) -> None:
        if product.sku in self._products:
            raise DuplicateProductError(product.sku)
        if product.price.currency != self.currency:
            raise ValueError(
                f"{product.sku} is priced in {product.price.currency}, "
                f"catalog uses {self.currency}"
            )
        if stock < 0:
            raise ValueError("stock must not be negative")
        self._products[product.sku] = product
        self._stock[product.sku] = stock
        self._reserved[product.sku] = 0

    def get(self, sku: str) -> Product:
        try:
            return self._products[sku]
        except KeyError:
            raise UnknownProductError(sku) from None

    def __contains__(self, sku: object) -> bool:
        return sku in self._products

    def __len__(self) -> int:
        return len(self._products)

    def stock(self, sku: str) -> int:
        self.get(sku)
        return self._stock[sku]

    def reserved(self, sku: str) -> int:
        self.get(sku)
        return self._reserved[sku]

    def available(self, sku: str) -> int:
        """Units that can still be reserved."""
        self.get(sku)
        return self._stock[sku] - self._reserved[sku]

    def restock(self, sku: str, quantity: int) -> int:
        """Add ``quantity`` units to the shelf and return the new stock."""
        self.get(sku)
        if quantity <= 0:
            raise ValueError("restock quantity must be positive")
        self._stock[sku] += quantity
        return self._stock[sku]

    def reserve(self, sku: str, quantity: int) -> None:
        product = self.get(sku)
        if quantity <= 0:
            raise ValueError("reservation quantity must be positive")
        if not product.active:
            raise OutOfStockError(f"{sku} is no longer sold")
        if quantity > self.available(sku):
            raise OutOfStockError(
                f"{sku}: wanted {quantity}, only {self.available(sku)} available"
            )
        self._reserved[sku] += quantity

    def release(self, sku: str, quantity: int) -> None:
        self.get(sku)
        if quantity <= 0:
            raise ValueError("release quantity must be positive")
        if quantity > self._reserved[sku]:
            raise ValueError(f"{sku}: cannot release more than is reserved")
        self._reserved[sku] -= quantity

    def commit(self, sku: str, quantity: int) -> None:
        """Turn a reservation into a sale: the units leave the shelf."""
        self.release(sku, quantity)
        self._stock[sku] -= quantity

    @contextmanager
    def reservation(self, sku: str, quantity: int) -> Iterator[Product]:
        """Reserve stock for the ``with`` block.

        The units are sold (committed) when the block finishes normally and
        released again if it raises.
        """
        self.reserve(sku, quantity)
        try:
            yield self._products[sku]
        except BaseException:
            self.release(sku, quantity)
            raise
        else:
            self.commit(sku, quantity)

    def search(
        self,
        category: Optional[str] = None,
        max_price: Optional[Money] = None,
        in_stock_only: bool = False,
    ) -> list[Product]:
        """Active products matching every given filter, sorted by SKU."""
        found = []
        for sku in sorted(self._products):
            product = self._products[sku]
            if not product.active:
                continue
            if category is not None and product.category != category:
                continue
            if max_price is not None and product.price > max_price:
                continue
            if in_stock_only and self.available(sku) <= 0:
                continue
            found.append(product)
        return found

    def low_stock(self, threshold: int) -> list[str]:
        """SKUs of active products whose available units are at or below ``threshold``."""
        return [
            sku
            for sku in sorted(self._products)
            if self._products[sku].active and self.available(sku) <= threshold
        ]
