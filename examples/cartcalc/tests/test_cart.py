from datetime import date
from decimal import Decimal

import pytest

from cartcalc.cart import MAX_LINE_QUANTITY, Cart, CartError, Totals
from cartcalc.catalog import Catalog, OutOfStockError, Product, UnknownProductError
from cartcalc.discounts import BuyXGetYDiscount, Coupon, FixedDiscount, PercentageDiscount
from cartcalc.money import Money
from cartcalc.tax import UnknownRegionError

DAY = date(2024, 6, 1)


def make_catalog():
    catalog = Catalog("EUR")
    catalog.add_product(Product("BK-1001", "Dune", Money("18.00"), "books", 450), stock=10)
    catalog.add_product(Product("TOY-200", "Kite", Money("24.99"), "toys", 800), stock=3)
    catalog.add_product(Product("GC-050", "Gift card", Money("50.00"), "gift-cards", 0), stock=200)
    catalog.add_product(Product("EB-300", "E-book", Money("7.99"), "books", 0), stock=200)
    catalog.add_product(
        Product("OLD-999", "Fax", Money("5.00"), "office", 2000, active=False), stock=10
    )
    return catalog


def test_add_merges_quantities_and_keeps_order():
    cart = Cart(make_catalog())
    cart.add("TOY-200")
    cart.add("BK-1001", 2)
    line = cart.add("TOY-200", 1)
    assert line.quantity == 2
    assert [(l.sku, l.quantity) for l in cart.lines] == [("TOY-200", 2), ("BK-1001", 2)]
    assert cart.item_count() == 4
    assert cart.weight_grams() == 2 * 800 + 2 * 450
    assert cart.subtotal() == Money("85.98")
    assert cart.categories() == ["books", "toys"]


def test_add_rejects_bad_requests():
    cart = Cart(make_catalog())
    with pytest.raises(CartError):
        cart.add("BK-1001", 0)
    with pytest.raises(CartError):
        cart.add("OLD-999")
    with pytest.raises(UnknownProductError):
        cart.add("NO-000")
    cart.add("TOY-200", 3)  # all of the stock
    with pytest.raises(OutOfStockError):
        cart.add("TOY-200", 1)
    assert cart.lines[0].quantity == 3


def test_line_quantity_limit():
    cart = Cart(make_catalog())
    cart.add("GC-050", MAX_LINE_QUANTITY)
    with pytest.raises(CartError):
        cart.add("GC-050", 1)
    with pytest.raises(CartError):
        cart.set_quantity("GC-050", MAX_LINE_QUANTITY + 1)
    assert cart.item_count() == 99


def test_set_quantity_and_remove():
    cart = Cart(make_catalog())
    cart.add("BK-1001", 2)
    cart.add("TOY-200", 1)
    cart.set_quantity("BK-1001", 10)
    assert cart.lines[0].quantity == 10
    with pytest.raises(OutOfStockError):
        cart.set_quantity("BK-1001", 11)
    with pytest.raises(CartError):
        cart.set_quantity("BK-1001", -1)
    with pytest.raises(CartError):
        cart.set_quantity("EB-300", 1)
    cart.set_quantity("BK-1001", 0)
    assert [l.sku for l in cart.lines] == ["TOY-200"]
    cart.remove("TOY-200")
    assert cart.is_empty()
    with pytest.raises(CartError):
        cart.remove("TOY-200")


def test_rule_context():
    cart = Cart(make_catalog())
    assert cart.rule_context()["category"] == ""
    cart.add("BK-1001", 2)
    cart.add("EB-300")
    ctx = cart.rule_context("DE")
    assert ctx == {
        "total": Money("43.99"),
        "items": 3,
        "lines": 2,
        "categories": ["books"],
        "category": "books",
        "skus": ["BK-1001", "EB-300"],
        "weight": 900,
        "region": "DE",
    }
    cart.add("TOY-200")
    assert cart.rule_context()["category"] == "mixed"
    assert cart.rule_context()["region"] == ""


def test_empty_cart_totals_are_zero():
    totals = Cart(make_catalog()).totals(on=DAY, region="DE")
    zero = Money("0")
    assert totals == Totals(zero, zero, zero, zero, zero)


def test_totals_without_discount():
    cart = Cart(make_catalog())
    cart.add("BK-1001", 1)  # 18.00 books 7 %
    cart.add("TOY-200", 1)  # 24.99 toys 19 %
    totals = cart.totals(on=DAY, region="DE")
    assert totals.subtotal == Money("42.99")
    assert totals.discount == Money("0")
    assert [(t.category, t.tax) for t in totals.tax_lines] == [
        ("books", Money("1.26")),
        ("toys", Money("4.75")),  # 4.7481
    ]
    assert totals.tax == Money("6.01")
    assert totals.shipping == Money("6.90")  # 1250 g
    assert totals.total == Money("55.90")


def test_pipeline_discount_is_spread_over_categories_before_tax():
    cart = Cart(make_catalog())
    cart.add("BK-1001", 2)  # 36.00
    cart.add("TOY-200", 1)  # 24.99
    coupon = Coupon("TENOFF", FixedDiscount(Money("10.00")))
    totals = cart.totals(on=DAY, region="DE", coupons=[coupon])
    assert totals.subtotal == Money("60.99")
    assert totals.discount == Money("10.00")
    assert totals.applied_codes == ("TENOFF",)
    # 10.00 split 36.00 : 24.99 -> 5.90 / 4.10
    assert [t.base for t in totals.tax_lines] == [Money("30.10"), Money("20.89")]
    assert [t.tax for t in totals.tax_lines] == [Money("2.11"), Money("3.97")]
    assert totals.tax == Money("6.08")
    # discounted value 50.99 reaches the free shipping threshold
    assert totals.shipping == Money("0")
    assert totals.total == Money("57.07")


def test_free_shipping_judged_after_discount():
    cart = Cart(make_catalog())
    cart.add("BK-1001", 3)  # 54.00, 1350 g
    coupon = Coupon("READ10", PercentageDiscount(Decimal("10")), min_spend=Money("30.00"))
    totals = cart.totals(on=DAY, region="DE", coupons=[coupon])
    assert totals.discount == Money("5.40")
    assert totals.tax == Money("3.40")
    assert totals.shipping == Money("6.90")
    assert totals.total == Money("58.90")


def test_prices_including_tax():
    cart = Cart(make_catalog())
    cart.add("TOY-200", 2)  # 49.98 gross, 1600 g
    totals = cart.totals(on=DAY, region="FR", prices_include_tax=True)
    assert totals.tax == Money("8.33")  # 49.98 - 41.65
    assert totals.shipping == Money("6.90")
    assert totals.total == Money("56.88")  # tax is already in the price


def test_digital_and_exempt_goods():
    cart = Cart(make_catalog())
    cart.add("GC-050", 1)
    cart.add("EB-300", 1)
    totals = cart.totals(on=DAY, region="DE")
    assert totals.shipping == Money("0")
    assert [(t.category, t.rate, t.tax) for t in totals.tax_lines] == [
        ("books", Decimal("7"), Money("0.56")),
        ("gift-cards", Decimal("0"), Money("0.00")),
    ]
    assert totals.total == Money("58.55")


def test_conditional_coupon_uses_cart_context():
    cart = Cart(make_catalog())
    cart.add("BK-1001", 3)
    coupon = Coupon(
        "BOOKWORM",
        BuyXGetYDiscount("BK-1001", 2, 1),
        condition='category == "books" and items >= 3 and region in ["DE", "AT"]',
    )
    de = cart.totals(on=DAY, region="DE", coupons=[coupon])
    assert de.discount == Money("18.00")
    assert de.total == Money("36.00") + Money("2.52") + Money("6.90")
    fr = cart.totals(on=DAY, region="FR", coupons=[coupon])
    assert fr.discount == Money("0")
    assert fr.rejected == (("BOOKWORM", "conditions not met"),)
    cart.add("TOY-200")
    mixed = cart.totals(on=DAY, region="DE", coupons=[coupon])
    assert mixed.applied_codes == ()


def test_unknown_region():
    cart = Cart(make_catalog())
    cart.add("BK-1001")
    with pytest.raises(UnknownRegionError):
        cart.totals(on=DAY, region="ZZ")


def test_checkout_sells_stock_redeems_coupons_and_empties_cart():
    catalog = make_catalog()
    cart = Cart(catalog)
    cart.add("BK-1001", 4)
    cart.add("TOY-200", 2)
    coupon = Coupon("ONCE", FixedDiscount(Money("5.00")), max_uses=1)
    totals = cart.checkout(on=DAY, region="DE", coupons=[coupon])
    assert totals.discount == Money("5.00")
    assert catalog.stock("BK-1001") == 6
    assert catalog.stock("TOY-200") == 1
    assert catalog.reserved("BK-1001") == 0
    assert coupon.uses == 1
    assert cart.is_empty()
    with pytest.raises(CartError):
        cart.checkout(on=DAY, region="DE")


def test_checkout_rolls_back_all_reservations_when_one_line_fails():
    catalog = make_catalog()
    cart = Cart(catalog)
    cart.add("BK-1001", 4)
    cart.add("TOY-200", 2)
    catalog.reserve("TOY-200", 2)  # someone else grabs the kites meanwhile
    coupon = Coupon("ONCE", FixedDiscount(Money("5.00")), max_uses=1)
    with pytest.raises(OutOfStockError):
        cart.checkout(on=DAY, region="DE", coupons=[coupon])
    assert catalog.stock("BK-1001") == 10
    assert catalog.reserved("BK-1001") == 0
    assert catalog.reserved("TOY-200") == 2
    assert coupon.uses == 0
    assert cart.item_count() == 6
