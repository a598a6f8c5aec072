"""cartcalc: a small shopping-cart pricing engine."""
from .cart import Cart, CartError, LineItem, Totals
from .catalog import (
    Catalog,
    CatalogError,
    DuplicateProductError,
    InvalidSkuError,
    OutOfStockError,
    Product,
    UnknownProductError,
    validate_sku,
)
from .discounts import (
    BuyXGetYDiscount,
    Coupon,
    CouponError,
    DiscountResult,
    FixedDiscount,
    PercentageDiscount,
    TieredDiscount,
    apply_coupons,
    best_discount,
)
from .money import CurrencyMismatchError, Money, MoneyError, sum_money
from .rules import Rule, RuleEvaluationError, RuleSyntaxError, compile_rule, evaluate
from .shipping import DEFAULT_SHIPPING, ShippingError, ShippingPolicy, WeightBand
from .tax import DEFAULT_TAX_TABLE, TaxLine, TaxTable, UnknownRegionError, compute_tax

__version__ = "0.3.1"

__all__ = [
    "BuyXGetYDiscount",
    "Cart",
    "CartError",
    "Catalog",
    "CatalogError",
    "Coupon",
    "CouponError",
    "CurrencyMismatchError",
    "DEFAULT_SHIPPING",
    "DEFAULT_TAX_TABLE",
    "DiscountResult",
    "DuplicateProductError",
    "FixedDiscount",
    "InvalidSkuError",
    "LineItem",
    "Money",
    "MoneyError",
    "OutOfStockError",
    "PercentageDiscount",
    "Product",
    "Rule",
    "RuleEvaluationError",
    "RuleSyntaxError",
    "ShippingError",
    "ShippingPolicy",
    "TaxLine",
    "TaxTable",
    "Totals",
    "TieredDiscount",
    "UnknownProductError",
    "UnknownRegionError",
    "WeightBand",
    "apply_coupons",
    "best_discount",
    "compile_rule",
    "compute_tax",
    "evaluate",
    "sum_money",
    "validate_sku",
]
