import pytest

from cartcalc.money import Money
from cartcalc.shipping import DEFAULT_SHIPPING, ShippingError, ShippingPolicy, WeightBand

CHEAP = Money("10.00")


@pytest.mark.parametrize(
    "grams, price",
    [
        (1, "4.90"),
        (500, "4.90"),
        (501, "6.90"),
        (2000, "6.90"),
        (2001, "12.90"),
        (10000, "12.90"),
        (10001, "14.40"),  # one started kg above the last band
        (11000, "14.40"),
        (11001, "15.90"),
        (13500, "18.90"),  # 3.5 kg above -> 4 started kg
    ],
)
def test_weight_bands_and_surcharge(grams, price):
    assert DEFAULT_SHIPPING.cost(grams, CHEAP) == Money(price)


def test_digital_goods_ship_free():
    assert DEFAULT_SHIPPING.cost(0, CHEAP) == Money("0")


def test_free_shipping_threshold_is_inclusive():
    assert DEFAULT_SHIPPING.cost(800, Money("49.99")) == Money("6.90")
    assert DEFAULT_SHIPPING.cost(800, Money("50.00")) == Money("0")
    assert DEFAULT_SHIPPING.cost(50000, Money("50.00")) == Money("0")
    assert DEFAULT_SHIPPING.qualifies_for_free_shipping(Money("50.00"))
    assert not DEFAULT_SHIPPING.qualifies_for_free_shipping(Money("49.99"))


def test_amount_to_free_shipping():
    assert DEFAULT_SHIPPING.amount_to_free_shipping(Money("31.50")) == Money("18.50")
    assert DEFAULT_SHIPPING.amount_to_free_shipping(Money("50.00")) == Money("0")
    assert DEFAULT_SHIPPING.amount_to_free_shipping(Money("80.00")) == Money("0")
    policy = ShippingPolicy([WeightBand(1000, Money("3.00"))])
    assert policy.amount_to_free_shipping(Money("1000")) is None
    assert not policy.qualifies_for_free_shipping(Money("1000"))


def test_too_heavy_without_surcharge_and_negative_weight():
    policy = ShippingPolicy([WeightBand(1000, Money("3.00"))])
    assert policy.cost(1000, CHEAP) == Money("3.00")
    with pytest.raises(ShippingError):
        policy.cost(1001, CHEAP)
    with pytest.raises(ShippingError):
        DEFAULT_SHIPPING.cost(-1, CHEAP)


def test_bands_are_sorted_and_validated():
    policy = ShippingPolicy(
        [WeightBand(5000, Money("9.00")), WeightBand(1000, Money("4.00"))],
        currency="EUR",
    )
    assert [band.max_grams for band in policy.bands] == [1000, 5000]
    assert policy.band_for(999).price == Money("4.00")
    assert policy.band_for(1000).price == Money("4.00")
    assert policy.band_for(1001).price == Money("9.00")
    assert policy.band_for(5001) is None
    with pytest.raises(ValueError):
        ShippingPolicy([])
    with pytest.raises(ValueError):
        ShippingPolicy([WeightBand(1000, Money("1")), WeightBand(1000, Money("2"))])
    with pytest.raises(ValueError):
        ShippingPolicy([WeightBand(0, Money("1"))])
    with pytest.raises(ValueError):
        ShippingPolicy([WeightBand(1000, Money("1", "USD"))])


def test_other_currency_policy():
    policy = ShippingPolicy(
        [WeightBand(2000, Money("5.00", "USD"))],
        free_threshold=Money("35.00", "USD"),
        extra_per_kg=Money("2.00", "USD"),
        currency="USD",
    )
    assert policy.cost(0, Money("1", "USD")) == Money("0", "USD")
    assert policy.cost(4500, Money("10", "USD")) == Money("11.00", "USD")
