import pytest

from cartcalc.catalog import (
    Catalog,
    DuplicateProductError,
    InvalidSkuError,
    OutOfStockError,
    Product,
    UnknownProductError,
    validate_sku,
)
from cartcalc.money import Money


def make_catalog():
    catalog = Catalog("EUR")
    catalog.add_product(Product("BK-1001", "Dune", Money("18.00"), "books", 450), stock=5)
    catalog.add_product(Product("BK-1002", "Emma", Money("9.50"), "books", 300), stock=0)
    catalog.add_product(Product("TOY-200", "Kite", Money("24.99"), "toys", 800), stock=3)
    catalog.add_product(
        Product("OLD-999", "Fax", Money("5.00"), "office", 2000, active=False), stock=10
    )
    return catalog


@pytest.mark.parametrize(
    "sku",
    ["AB-123", "ABCD-123456", "BK-1001", "TOY-200"],
)
def test_valid_skus(sku):
    assert validate_sku(sku) == sku


@pytest.mark.parametrize(
    "sku",
    [
        "AB123",  # no hyphen
        "A-123",  # prefix too short
        "ABCDE-123",  # prefix too long
        "ab-123",  # lowercase
        "AB-12",  # number too short
        "AB-1234567",  # number too long
        "AB-12X",  # not digits
        "ÄB-123",  # non-ascii letter
        "AB-١٢٣",  # non-ascii digits
    ],
)
def test_invalid_skus(sku):
    with pytest.raises(InvalidSkuError):
        validate_sku(sku)


def test_product_validation():
    with pytest.raises(ValueError):
        Product("AB-123", "  ", Money("1"), "x")
    with pytest.raises(ValueError):
        Product("AB-123", "Thing", Money("-0.01"), "x")
    with pytest.raises(ValueError):
        Product("AB-123", "Thing", Money("1"), "x", weight_grams=-1)
    assert Product("AB-123", "Free", Money("0"), "x").price.is_zero()


def test_add_and_get():
    catalog = make_catalog()
    assert len(catalog) == 4
    assert "BK-1001" in catalog
    assert "BK-9999" not in catalog
    assert catalog.get("TOY-200").name == "Kite"
    with pytest.raises(UnknownProductError):
        catalog.get("BK-9999")
    with pytest.raises(DuplicateProductError):
        catalog.add_product(Product("BK-1001", "Dune 2", Money("1"), "books"))
    with pytest.raises(ValueError):
        catalog.add_product(Product("US-100", "Dollar", Money("1", "USD"), "misc"))
    with pytest.raises(ValueError):
        catalog.add_product(Product("NEW-100", "New", Money("1"), "misc"), stock=-1)


def test_reserve_release_commit():
    catalog = make_catalog()
    catalog.reserve("BK-1001", 2)
    assert catalog.stock("BK-1001") == 5
    assert catalog.reserved("BK-1001") == 2
    assert catalog.available("BK-1001") == 3
    catalog.reserve("BK-1001", 3)  # exactly what is left
    assert catalog.available("BK-1001") == 0
    with pytest.raises(OutOfStockError):
        catalog.reserve("BK-1001", 1)
    catalog.release("BK-1001", 1)
    assert catalog.available("BK-1001") == 1
    catalog.commit("BK-1001", 4)
    assert catalog.stock("BK-1001") == 1
    assert catalog.reserved("BK-1001") == 0
    assert catalog.available("BK-1001") == 1


def test_reserve_rejects_bad_requests():
    catalog = make_catalog()
    with pytest.raises(ValueError):
        catalog.reserve("BK-1001", 0)
    with pytest.raises(OutOfStockError):
        catalog.reserve("OLD-999", 1)  # inactive
    with pytest.raises(OutOfStockError):
        catalog.reserve("BK-1002", 1)
    with pytest.raises(ValueError):
        catalog.release("BK-1001", 1)  # nothing reserved
    with pytest.raises(ValueError):
        catalog.release("BK-1001", 0)
    with pytest.raises(UnknownProductError):
        catalog.reserve("ZZ-000", 1)


def test_restock():
    catalog = make_catalog()
    assert catalog.restock("BK-1002", 4) == 4
    assert catalog.available("BK-1002") == 4
    with pytest.raises(ValueError):
        catalog.restock("BK-1002", 0)


def test_reservation_context_commits_on_success():
    catalog = make_catalog()
    with catalog.reservation("TOY-200", 2) as product:
        assert product.sku == "TOY-200"
        assert catalog.available("TOY-200") == 1
        assert catalog.stock("TOY-200") == 3
    assert catalog.stock("TOY-200") == 1
    assert catalog.reserved("TOY-200") == 0


def test_reservation_context_releases_on_error():
    catalog = make_catalog()
    with pytest.raises(RuntimeError):
        with catalog.reservation("TOY-200", 2):
            raise RuntimeError("payment declined")
    assert catalog.stock("TOY-200") == 3
    assert catalog.reserved("TOY-200") == 0
    assert catalog.available("TOY-200") == 3


def test_search_filters():
    catalog = make_catalog()
    assert [p.sku for p in catalog.search()] == ["BK-1001", "BK-1002", "TOY-200"]
    assert [p.sku for p in catalog.search(category="books")] == ["BK-1001", "BK-1002"]
    assert [p.sku for p in catalog.search(max_price=Money("18.00"))] == ["BK-1001", "BK-1002"]
    assert [p.sku for p in catalog.search(max_price=Money("17.99"))] == ["BK-1002"]
    assert [p.sku for p in catalog.search(in_stock_only=True)] == ["BK-1001", "TOY-200"]
    assert catalog.search(category="office") == []


def test_low_stock():
    catalog = make_catalog()
    assert catalog.low_stock(0) == ["BK-1002"]
    assert catalog.low_stock(3) == ["BK-1002", "TOY-200"]
    catalog.reserve("BK-1001", 2)
    assert catalog.low_stock(3) == ["BK-1001", "BK-1002", "TOY-200"]
    assert catalog.low_stock(2) == ["BK-1002"]
