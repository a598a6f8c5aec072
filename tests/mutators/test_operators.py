"""Each operator on a small snippet: exactly the expected mutants, well formed, git-applicable, and
nothing where the operator does not apply."""
from __future__ import annotations

import textwrap

import pytest

from episodes.engine.inject.mutators import OPERATORS, mutations

from .conftest import assert_well_formed


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# operator -> (snippet, [(fragment of the original, its replacement), ...]): one entry per expected mutant.
CASES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "flip_comparison": (
        src("""
            def f(a, b, xs):
                if a < b and a is not None:
                    return a in xs
                return a == b
        """),
        [
            ("a < b and", "a >= b and"),
            ("a is not None", "a is None"),
            ("a in xs", "a not in xs"),
            ("a == b", "a != b"),
        ],
    ),
    "change_operator": (
        src("""
            def f(a, b, flags):
                total = a + b * 2
                total -= a % b
                ok = a and b
                return total // 3 if flags & 1 else a << b
        """),
        [
            ("a + b * 2", "a - b * 2"),
            ("b * 2", "b // 2"),
            ("b * 2", "b / 2"),
            ("total -= a", "total += a"),
            ("a % b", "a // b"),
            ("a and b", "a or b"),
            ("total // 3", "total * 3"),
            ("flags & 1", "flags | 1"),
            ("a << b", "a >> b"),
        ],
    ),
    "swap_operands": (
        src("""
            def f(a, b, name):
                d = a - b
                if a < b:
                    return "x" + name
                return a * b + (a == b) + (a + b)
        """),
        [
            ("d = a - b", "d = b - a"),
            ("if a < b:", "if b < a:"),
            ('"x" + name', 'name + "x"'),
        ],
    ),
    "off_by_one": (
        src("""
            def f(xs, n):
                head = xs[1:n]
                for i in range(n):
                    head.append(-2)
                return head
        """),
        [
            ("xs[1:n]", "xs[2:n]"),
            ("xs[1:n]", "xs[0:n]"),
            ("xs[1:n]", "xs[1:n + 1]"),
            ("xs[1:n]", "xs[1:n - 1]"),
            ("range(n)", "range(n + 1)"),
            ("range(n)", "range(n - 1)"),
            ("append(-2)", "append(-1)"),
            ("append(-2)", "append(-3)"),
        ],
    ),
    "invert_if_else": (
        src("""
            def f(x):
                if x:
                    y = 1
                else:
                    y = 2
                return y
        """),
        [("        y = 1\n    else:\n        y = 2\n", "        y = 2\n    else:\n        y = 1\n")],
    ),
    "remove_condition": (
        src("""
            def f(x, y):
                if x:
                    y += 1
                if y > 2:
                    return 1
                elif y < 0:
                    return -1
                return 0
        """),
        [
            ("    if x:\n        y += 1\n", "    y += 1\n"),
            ("    elif y < 0:\n        return -1\n", ""),
        ],
    ),
    "remove_assignment": (
        src("""
            def f(x):
                y = x * 2
                y += 1
                z: int = y
                if x:
                    w = 3
                return z
        """),
        [
            ("    y = x * 2\n", ""),
            ("    y += 1\n", ""),
            ("    z: int = y\n", ""),
        ],
    ),
    "remove_loop": (
        src("""
            def f(xs):
                total = 0
                for x in xs:
                    total += x
                while total > 10:
                    total -= 10
                return total
        """),
        [
            ("    for x in xs:\n        total += x\n", ""),
            ("    while total > 10:\n        total -= 10\n", ""),
        ],
    ),
    "remove_wrapper": (
        src("""
            def f(path, lock):
                with lock:
                    data = read(path)
                try:
                    value = int(data)
                except ValueError:
                    value = 0
                return value
        """),
        [
            ("    with lock:\n        data = read(path)\n", "    data = read(path)\n"),
            (
                "    try:\n        value = int(data)\n    except ValueError:\n        value = 0\n",
                "    value = int(data)\n",
            ),
        ],
    ),
    "shuffle_statements": (
        src("""
            def f(log, a, b):
                log.append(a)
                other = b
                c = a + 1
                d = c * 2
                return d
        """),
        [("    log.append(a)\n    other = b\n", "    other = b\n    log.append(a)\n")],
    ),
    "break_bool_chain": (
        src("""
            def f(a, b, c):
                if a and b and c:
                    return a or (b and c)
        """),
        [
            ("if a and b and c:", "if b and c:"),
            ("if a and b and c:", "if a and c:"),
            ("if a and b and c:", "if a and b:"),
            ("return a or (b and c)", "return (b and c)"),
            ("return a or (b and c)", "return a"),
            ("return a or (b and c)", "return a or (c)"),
            ("return a or (b and c)", "return a or (b)"),
        ],
    ),
    "remove_return_value": (
        src("""
            def f(x):
                if x is None:
                    return
                if x < 0:
                    log(x)
                    return -x
                return x * 2
        """),
        [
            ("        return\n", "        pass\n"),
            ("return -x", "return None"),
            ("        log(x)\n        return -x\n", "        log(x)\n"),
            ("return x * 2", "return None"),
        ],
    ),
    "swap_call_arguments": (
        src("""
            def f(a, b):
                g(a, b, 1, 2)
                h("x", 3, key=a)
                return max(a, b)
        """),
        [
            ("g(a, b, 1, 2)", "g(b, a, 1, 2)"),
            ("g(a, b, 1, 2)", "g(a, b, 2, 1)"),
        ],
    ),
}

# operator -> a snippet where it finds nothing to change.
NOT_APPLICABLE: dict[str, str] = {
    "flip_comparison": "def f(a, b):\n    return a + b if a else b\n",
    "change_operator": "def f(a, b):\n    return a < b, a ** b, a ^ b, -a, not b, '%s' % a\n",
    "swap_operands": "def f(a, b):\n    return a + b, a * b, a == b, a & b, a in b, 1 < a < b, '%d' % a\n",
    "off_by_one": "def f(x, n):\n    return x[n], x[:], g(n), range(*n)\n",
    "invert_if_else": "def f(x):\n    if x:\n        return 1\n    elif x is None:\n        return 2\n    return 3\n",
    "remove_condition": "def f(x):\n    if x:\n        y = 1\n    else:\n        y = 2\n    return y\n",
    "remove_assignment": "def f(x):\n    if x:\n        y = 1\n    else:\n        y: int\n    return x\n",
    "remove_loop": "def f(xs):\n    if xs:\n        for x in xs:\n            print(x)\n"
        "    else:\n        while xs:\n            xs.pop()\n",
    "remove_wrapper": "def f(p):\n    with open(p) as fh:\n        data = fh.read()\n    try:\n"
        "        return data\n    finally:\n        print(p)\n",
    "shuffle_statements": "def f(a):\n    '''Doc.'''\n    b = a + 1\n    c = g(b)\n    a.x = c\n"
        "    x = 1\n    y = 2\n    h(y)\n    return x\n",
    "break_bool_chain": "def f(a, b):\n    return not a if b else a\n",
    "remove_return_value": "def f(x):\n    y = g(x)\n    if y:\n        y = 2\n        return None\n",
    "swap_call_arguments": "def f(a, b):\n    g(a, 1, key=b)\n    g('x', b'y', 1.0, 2)\n"
        "    g(*a, b)\n    return max(a, b), min(1, 2), g(a, a)\n",
}


def test_every_operator_has_cases():
    assert set(CASES) == set(OPERATORS) == set(NOT_APPLICABLE)


@pytest.mark.parametrize("operator", sorted(CASES))
def test_expected_mutants(operator):
    source, expected = CASES[operator]
    found = mutations(source, "pkg/snippet.py", operators=[operator], min_complexity=1)
    wanted = []
    for old, new in expected:
        assert source.count(old) >= 1, old
        wanted.append(source.replace(old, new, 1))
    assert sorted(m.mutated for m in found) == sorted(wanted)
    for m in found:
        assert m.operator == operator and m.path == "pkg/snippet.py" and m.qualname == "f"
        assert m.original == source and m.description
        assert 2 <= m.line <= source.count("\n")


@pytest.mark.parametrize("operator", sorted(CASES))
def test_mutants_are_well_formed_and_apply_with_git(operator, roundtrip):
    source, _ = CASES[operator]
    found = mutations(source, "pkg/snippet.py", operators=[operator], min_complexity=1)
    assert found
    for m in found:
        assert_well_formed(m)
        roundtrip(m)


@pytest.mark.parametrize("operator", sorted(NOT_APPLICABLE))
def test_not_applicable(operator):
    assert mutations(NOT_APPLICABLE[operator], "x.py", operators=[operator], min_complexity=1) == []


# -- details of single operators ------------------------------------------------------------


def _mutated(source: str, operator: str) -> list[str]:
    return [m.mutated for m in mutations(source, "x.py", operators=[operator], min_complexity=1)]


def test_swap_operands_keeps_precedence():
    source = "def f(a, b, c):\n    return a - b - c\n"
    got = _mutated(source, "swap_operands")
    assert sorted(got) == sorted(
        ["def f(a, b, c):\n    return c - (a - b)\n", "def f(a, b, c):\n    return b - a - c\n"]
    )
    assert all(eval(compile(m + "r = f(1, 2, 3)\n", "x", "exec"), {}) is None for m in got)  # noqa: S307 - they run


def test_off_by_one_does_not_undo_a_shift():
    source = "def f(x, n):\n    return x[: n + 2], range(len(x) - 1)\n"
    got = _mutated(source, "off_by_one")
    # only the literals move; wrapping ``n + 2`` in ``(...) - 1`` would just restate the other mutant
    assert sorted(got) == sorted(
        [
            source.replace("n + 2", "n + 3"),
            source.replace("n + 2", "n + 1"),
            source.replace("- 1)", "- 2)"),
            source.replace("- 1)", "- 0)"),
        ]
    )


def test_off_by_one_parenthesizes_a_negative_base():
    source = "def f(n):\n    return 0 ** n\n"
    assert "(-1) ** n" in "".join(_mutated(source, "off_by_one"))


def test_remove_condition_keeps_comments_and_one_line_bodies():
    source = "def f(x, y):\n    # check\n    if x: y = 1\n    return y\n"
    assert _mutated(source, "remove_condition") == ["def f(x, y):\n    # check\n    y = 1\n    return y\n"]


def test_invert_if_else_on_the_last_elif():
    source = (
        "def f(x):\n    if x:\n        return 1\n    elif x is None:\n"
        "        return 2\n    else:\n        return 3\n"
    )
    assert _mutated(source, "invert_if_else") == [
        "def f(x):\n    if x:\n        return 1\n    elif x is None:\n        return 3\n    else:\n        return 2\n"
    ]


def test_shuffle_respects_attribute_dependencies():
    source = (
        "def f(self, g):\n    self.total = 0\n    self.recompute()\n    g(self.a)\n"
        "    self.b = 1\n    self.c = g(2)\n    return 0\n"
    )
    got = _mutated(source, "shuffle_statements")
    # Writing ``self.total`` / ``self.b`` conflicts with anything that reads ``self`` (it may look at
    # them); the two calls only read, and writes to different attributes are independent.
    assert sorted(got) == sorted(
        [
            source.replace("    self.recompute()\n    g(self.a)\n", "    g(self.a)\n    self.recompute()\n"),
            source.replace("    self.b = 1\n    self.c = g(2)\n", "    self.c = g(2)\n    self.b = 1\n"),
        ]
    )


def test_remove_wrapper_keeps_else_and_finally():
    source = (
        "def f(x):\n    try:\n        y = g(x)\n    except KeyError:\n        y = 0\n"
        "    else:\n        y += 1\n    finally:\n        done()\n    return y\n"
    )
    assert _mutated(source, "remove_wrapper") == ["def f(x):\n    y = g(x)\n    y += 1\n    done()\n    return y\n"]


def test_remove_assignment_from_a_line_with_several_statements():
    source = "def f():\n    a = 1; b = 2\n    return a\n"
    assert sorted(_mutated(source, "remove_assignment")) == sorted(
        ["def f():\n    b = 2\n    return a\n", "def f():\n    a = 1\n    return a\n"]
    )


def test_only_function_bodies_are_mutated():
    source = src("""
        X = 1 + 2 if True else 3

        def f(a=1, b: int = 2) -> list[int]:
            pass

        class C:
            Y = X < 4 and X > 0
            def m(self, n=len([1, 2])):
                pass
    """)
    assert mutations(source, "x.py", min_complexity=1) == []


def test_nested_function_sites_belong_to_the_nested_function():
    source = src("""
        def outer(x):
            def inner(y):
                return y < 1
            return inner(x) > 2
    """)
    found = mutations(source, "x.py", operators=["flip_comparison"], min_complexity=1)
    assert [(m.qualname, m.line) for m in found] == [("outer", 4), ("outer.inner", 3)]


def test_statement_removal_leaves_comments_and_spacing():
    source = src("""
        def f(a):
            x = g(a)

            # about y
            y = h(a)

            # about the result
            return x + y

        def k(a):
            x = g(a)

            for i in a:
                x += i

            return x
    """)
    assert _mutated(source, "remove_assignment")[1] == source.replace("    y = h(a)\n", "", 1)
    (loop,) = _mutated(source, "remove_loop")
    assert loop == source.replace("    for i in a:\n        x += i\n\n", "", 1)  # no double blank line


def test_shuffled_statements_take_their_comments_along():
    source = "def f(a):\n    g(a)\n    # why h\n    h(a)\n"
    assert _mutated(source, "shuffle_statements") == ["def f(a):\n    # why h\n    h(a)\n    g(a)\n"]
