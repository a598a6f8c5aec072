from decimal import Decimal

import pytest

from cartcalc.money import Money
from cartcalc.rules import (
    RuleEvaluationError,
    RuleSyntaxError,
    compile_rule,
    evaluate,
    tokenize,
)

CONTEXT = {
    "total": Money("50.00"),
    "items": 3,
    "category": "books",
    "categories": ["books", "music"],
    "region": "DE",
    "weight": 1250,
    "member": True,
    "ratio": 0.5,
}


def test_tokenize():
    tokens = tokenize('total >= 49.5 and category == "books"')
    assert [(t.kind, t.value) for t in tokens] == [
        ("NAME", "total"),
        ("OP", ">="),
        ("NUMBER", Decimal("49.5")),
        ("KEYWORD", "and"),
        ("NAME", "category"),
        ("OP", "=="),
        ("STRING", "books"),
        ("EOF", None),
    ]
    assert [t.pos for t in tokens] == [0, 6, 9, 14, 18, 27, 30, 37]


def test_tokenize_strings_and_lists():
    tokens = tokenize("x in ['a\\'b', \"c\"]")
    assert [t.value for t in tokens] == ["x", "in", "[", "a'b", ",", "c", "]", None]
    assert tokenize(".5")[0].value == Decimal("0.5")
    assert tokenize("a<b")[1].value == "<"
    assert tokenize("a!=b")[1].value == "!="


@pytest.mark.parametrize(
    "text, position",
    [
        ("total >= 1.2.3", 12),
        ('category == "books', 12),
        ("total > 5 & items", 10),
        ("", 0),
        ("total >=", 8),
        ("(total > 5", 10),
        ("total > 5 items", 10),
        ("[1, 2", 5),
        ("total > 1 < 2", 10),
        ("total > .", 8),
        ("x == 'abc\\", 5),
    ],
)
def test_syntax_errors_report_position(text, position):
    with pytest.raises(RuleSyntaxError) as info:
        compile_rule(text)
    assert info.value.position == position


@pytest.mark.parametrize(
    "text, expected",
    [
        ("total >= 50", True),
        ("total > 50", False),
        ("total <= 50", True),
        ("total < 50", False),
        ("total == 50.00", True),
        ("total != 50", False),
        ("items > 2 and category == 'books'", True),
        ("items > 3 and category == 'books'", False),
        ("items > 3 or category == 'books'", True),
        ("items > 3 or category == 'toys'", False),
        ("not items > 3", True),
        ("not not member", True),
        ("'music' in categories", True),
        ("'toys' in categories", False),
        ("region in ['DE', 'AT']", True),
        ("region in []", False),
        ("'ook' in category", True),
        ("weight in [1000, 1250]", True),
        ("ratio == 0.5", True),
        ("member == true", True),
        ("member != false and total >= 10", True),
        # precedence: and binds tighter than or
        ("items == 1 and total > 0 or region == 'DE'", True),
        ("items == 1 and (total > 0 or region == 'DE')", False),
        ("region == 'FR' or items == 3 and weight < 1000", False),
    ],
)
def test_evaluate(text, expected):
    assert evaluate(text, CONTEXT) is expected


def test_or_and_and_short_circuit():
    # the unknown name is never looked at
    assert evaluate("items == 3 or missing > 1", CONTEXT) is True
    assert evaluate("items == 4 and missing > 1", CONTEXT) is False
    with pytest.raises(RuleEvaluationError):
        evaluate("items == 4 or missing > 1", CONTEXT)


@pytest.mark.parametrize(
    "text",
    [
        "missing == 1",
        "category > 5",
        "5 in 'abc'",
        "'a' in items",
    ],
)
def test_evaluation_errors(text):
    with pytest.raises(RuleEvaluationError):
        evaluate(text, CONTEXT)


def test_compiled_rule_reuse_and_names():
    rule = compile_rule("total >= 20 and (region in ['DE'] or not member)")
    assert rule.names() == {"total", "region", "member"}
    assert rule.evaluate({"total": 20, "region": "DE", "member": True}) is True
    assert rule.evaluate({"total": Decimal("19.99"), "region": "DE", "member": True}) is False
    assert rule.evaluate({"total": 25, "region": "FR", "member": False}) is True
    assert rule.evaluate({"total": 25, "region": "FR", "member": True}) is False
