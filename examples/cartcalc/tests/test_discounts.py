from datetime import date
from decimal import Decimal

import pytest

from cartcalc.cart import LineItem
from cartcalc.catalog import Product
from cartcalc.discounts import (
    BuyXGetYDiscount,
    Coupon,
    CouponError,
    FixedDiscount,
    PercentageDiscount,
    TieredDiscount,
    apply_coupons,
    best_discount,
)
from cartcalc.money import Money
from cartcalc.rules import RuleSyntaxError

DAY = date(2024, 3, 15)


def line(sku, price, category, quantity):
    return LineItem(Product(sku, sku.lower(), Money(price), category, 100), quantity)


LINES = [
    line("BK-100", "12.00", "books", 3),  # 36.00
    line("MU-200", "9.99", "music", 2),  # 19.98
    line("TOY-300", "4.02", "toys", 1),  # 4.02
]
SUBTOTAL = Money("60.00")


def test_percentage_discount_whole_cart_and_category():
    assert PercentageDiscount(Decimal("10")).amount(LINES, SUBTOTAL) == Money("6.00")
    assert PercentageDiscount(Decimal("25"), "books").amount(LINES, SUBTOTAL) == Money("9.00")
    assert PercentageDiscount(Decimal("50"), "music").amount(LINES, SUBTOTAL) == Money("9.99")
    assert PercentageDiscount(Decimal("10"), "garden").amount(LINES, SUBTOTAL) == Money("0")
    assert PercentageDiscount(Decimal("100")).amount(LINES, SUBTOTAL) == SUBTOTAL


@pytest.mark.parametrize("pct", ["0", "-5", "100.01"])
def test_percentage_discount_bounds(pct):
    with pytest.raises(ValueError):
        PercentageDiscount(Decimal(pct))


def test_fixed_discount_is_capped_at_subtotal():
    assert FixedDiscount(Money("5.00")).amount(LINES, SUBTOTAL) == Money("5.00")
    assert FixedDiscount(Money("60.00")).amount(LINES, SUBTOTAL) == Money("60.00")
    assert FixedDiscount(Money("75.00")).amount(LINES, SUBTOTAL) == Money("60.00")
    with pytest.raises(ValueError):
        FixedDiscount(Money("0"))


@pytest.mark.parametrize(
    "buy, get, quantity, free",
    [
        (2, 1, 0, 0),
        (2, 1, 2, 0),
        (2, 1, 3, 1),
        (2, 1, 5, 1),
        (2, 1, 6, 2),
        (2, 2, 7, 3),  # 4 -> 2 free, then 3 left: 1 more free
        (1, 1, 1, 0),
        (1, 1, 2, 1),
        (1, 1, 3, 1),
        (3, 1, 8, 2),
    ],
)
def test_buy_x_get_y_free_units(buy, get, quantity, free):
    assert BuyXGetYDiscount("BK-100", buy, get).free_units(quantity) == free


def test_buy_x_get_y_amount():
    assert BuyXGetYDiscount("BK-100", 2, 1).amount(LINES, SUBTOTAL) == Money("12.00")
    assert BuyXGetYDiscount("MU-200", 1, 1).amount(LINES, SUBTOTAL) == Money("9.99")
    assert BuyXGetYDiscount("TOY-300", 1, 1).amount(LINES, SUBTOTAL) == Money("0")
    assert BuyXGetYDiscount("XX-999", 1, 1).amount(LINES, SUBTOTAL) == Money("0")
    with pytest.raises(ValueError):
        BuyXGetYDiscount("BK-100", 0, 1)
    with pytest.raises(ValueError):
        BuyXGetYDiscount("BK-100", 1, 0)


TIERS = TieredDiscount(
    (
        (Money("50.00"), Decimal("5")),
        (Money("100.00"), Decimal("10")),
        (Money("200.00"), Decimal("15")),
    )
)


@pytest.mark.parametrize(
    "subtotal, rate, amount",
    [
        ("49.99", "0", "0.00"),
        ("50.00", "5", "2.50"),
        ("99.99", "5", "5.00"),
        ("100.00", "10", "10.00"),
        ("150.00", "10", "15.00"),
        ("200.00", "15", "30.00"),
        ("1000.00", "15", "150.00"),
    ],
)
def test_tiered_discount(subtotal, rate, amount):
    assert TIERS.rate_for(Money(subtotal)) == Decimal(rate)
    assert TIERS.amount([], Money(subtotal)) == Money(amount)


def test_tiered_discount_validation():
    with pytest.raises(ValueError):
        TieredDiscount(())
    with pytest.raises(ValueError):
        TieredDiscount(((Money("50"), Decimal("5")), (Money("50"), Decimal("10"))))
    with pytest.raises(ValueError):
        TieredDiscount(((Money("50"), Decimal("5")), (Money("40"), Decimal("10"))))
    with pytest.raises(ValueError):
        TieredDiscount(((Money("50"), Decimal("0")),))
    with pytest.raises(ValueError):
        TieredDiscount(((Money("50"), Decimal("100.5")),))
    everything = TieredDiscount(((Money("10"), Decimal("50")), (Money("500"), Decimal("100"))))
    assert everything.amount([], Money("600.00")) == Money("600.00")


def test_coupon_normalises_code_and_validates():
    coupon = Coupon("  spring10 ", PercentageDiscount(Decimal("10")))
    assert coupon.code == "SPRING10"
    with pytest.raises(CouponError):
        Coupon("   ", PercentageDiscount(Decimal("10")))
    with pytest.raises(CouponError):
        Coupon("X", FixedDiscount(Money("1")), date(2024, 2, 2), date(2024, 2, 1))
    with pytest.raises(CouponError):
        Coupon("X", FixedDiscount(Money("1")), max_uses=0)
    with pytest.raises(RuleSyntaxError):
        Coupon("X", FixedDiscount(Money("1")), condition="total >")
    # a one-day coupon is fine
    Coupon("X", FixedDiscount(Money("1")), date(2024, 2, 1), date(2024, 2, 1))


@pytest.mark.parametrize(
    "on, reason",
    [
        (date(2024, 2, 29), "not yet valid"),
        (date(2024, 3, 1), None),
        (date(2024, 3, 31), None),
        (date(2024, 4, 1), "expired"),
    ],
)
def test_coupon_date_range_is_inclusive(on, reason):
    coupon = Coupon(
        "MARCH", FixedDiscount(Money("5")), date(2024, 3, 1), date(2024, 3, 31)
    )
    assert coupon.check(on, SUBTOTAL) == reason
    assert coupon.is_valid(on, SUBTOTAL) is (reason is None)


def test_coupon_min_spend_and_condition():
    coupon = Coupon(
        "BOOKS",
        FixedDiscount(Money("5")),
        min_spend=Money("60.00"),
        condition="'books' in categories and items >= 3",
    )
    ctx = {"categories": ["books"], "items": 3}
    assert coupon.check(DAY, Money("60.00"), ctx) is None
    assert coupon.check(DAY, Money("59.99"), ctx) == "minimum spend not met"
    assert coupon.check(DAY, Money("60.00"), {"categories": ["books"], "items": 2}) == (
        "conditions not met"
    )


def test_coupon_usage_limit():
    coupon = Coupon("ONCE", FixedDiscount(Money("5")), max_uses=2)
    coupon.redeem()
    assert coupon.uses == 1
    assert coupon.is_valid(DAY, SUBTOTAL)
    coupon.redeem()
    assert coupon.check(DAY, SUBTOTAL) == "usage limit reached"
    with pytest.raises(CouponError):
        coupon.redeem()
    unlimited = Coupon("MANY", FixedDiscount(Money("5")))
    for _ in range(5):
        unlimited.redeem()
    assert unlimited.uses == 5 and unlimited.is_valid(DAY, SUBTOTAL)


def test_best_discount():
    assert best_discount([]) is None
    candidates = [("B", Money("5.00")), ("C", Money("7.00")), ("A", Money("7.00"))]
    assert best_discount(candidates) == ("A", Money("7.00"))
    assert best_discount(list(reversed(candidates))) == ("A", Money("7.00"))
    assert best_discount([("Z", Money("1.00")), ("Y", Money("0.99"))]) == ("Z", Money("1.00"))


def test_apply_coupons_exclusive_best_wins():
    coupons = [
        Coupon("TEN", PercentageDiscount(Decimal("10"))),  # 6.00
        Coupon("FIVE", FixedDiscount(Money("5.00"))),  # 5.00
        Coupon("BOGO", BuyXGetYDiscount("BK-100", 2, 1)),  # 12.00
    ]
    result = apply_coupons(coupons, LINES, SUBTOTAL, DAY)
    assert result.total == Money("12.00")
    assert result.applied_codes == ("BOGO",)
    assert result.rejected == (("TEN", "a better offer applies"), ("FIVE", "a better offer applies"))


def test_apply_coupons_stack_beats_single_exclusive():
    coupons = [
        Coupon("TEN", PercentageDiscount(Decimal("10"))),  # 6.00 exclusive
        Coupon("S4", FixedDiscount(Money("4.00")), stackable=True),
        Coupon("S3", FixedDiscount(Money("3.00")), stackable=True),
    ]
    result = apply_coupons(coupons, LINES, SUBTOTAL, DAY)
    assert result.total == Money("7.00")
    assert result.applied == (("S4", Money("4.00")), ("S3", Money("3.00")))
    assert result.rejected == (("TEN", "a better offer applies"),)


def test_apply_coupons_tie_goes_to_stack():
    coupons = [
        Coupon("SIX", FixedDiscount(Money("6.00"))),
        Coupon("S2", FixedDiscount(Money("2.00")), stackable=True),
        Coupon("S4", FixedDiscount(Money("4.00")), stackable=True),
    ]
    result = apply_coupons(coupons, LINES, SUBTOTAL, DAY)
    assert result.applied_codes == ("S4", "S2")
    assert result.total == Money("6.00")


def test_apply_coupons_stack_limit_and_rejections():
    coupons = [
        Coupon("S1", FixedDiscount(Money("1.00")), stackable=True),
        Coupon("S2", FixedDiscount(Money("2.00")), stackable=True),
        Coupon("S3", FixedDiscount(Money("3.00")), stackable=True),
        Coupon("S4", FixedDiscount(Money("4.00")), stackable=True),
        Coupon("s4", FixedDiscount(Money("9.00")), stackable=True),  # duplicate code
        Coupon("OLD", FixedDiscount(Money("50")), valid_until=date(2024, 1, 1)),
        Coupon("TOYS", PercentageDiscount(Decimal("10"), "garden")),  # worth nothing
    ]
    result = apply_coupons(coupons, LINES, SUBTOTAL, DAY)
    assert result.applied_codes == ("S4", "S3", "S2")
    assert result.total == Money("9.00")
    assert result.rejected == (
        ("S4", "duplicate code"),
        ("OLD", "expired"),
        ("TOYS", "nothing to discount"),
        ("S1", "stack limit reached"),
    )
    assert apply_coupons(coupons, LINES, SUBTOTAL, DAY, max_stack=4).total == Money("10.00")


def test_apply_coupons_total_never_exceeds_subtotal():
    coupons = [
        Coupon("BIG", FixedDiscount(Money("45.00")), stackable=True),
        Coupon("HALF", PercentageDiscount(Decimal("50")), stackable=True),
    ]
    result = apply_coupons(coupons, LINES, SUBTOTAL, DAY)
    assert result.total == SUBTOTAL
    assert [value for _, value in result.applied] == [Money("45.00"), Money("30.00")]


def test_apply_coupons_without_coupons():
    result = apply_coupons([], LINES, SUBTOTAL, DAY)
    assert result.total == Money("0")
    assert result.applied == () and result.rejected == ()
