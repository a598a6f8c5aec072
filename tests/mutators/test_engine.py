"""Function discovery, filtering, sampling, patches, and the whole engine over the sample library."""
from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest

from episodes.engine.inject.mutators import OPERATORS, FunctionInfo, Mutation, list_functions, mutations, sample

from .conftest import hunks

SOURCE = textwrap.dedent(
    """\
    import os


    def top(a):
        if a and a > 1:
            return [i for i in a if i]
        return a if a else None


    class Outer:
        class Inner:
            @staticmethod
            @other
            def method(x):
                for i in x:
                    try:
                        pass
                    except ValueError:
                        pass
                while x:
                    x -= 1

        async def run(self):
            def helper():
                return 1
            return helper()
    """
)


def test_list_functions():
    assert list_functions(SOURCE, "pkg/mod.py") == [
        FunctionInfo("pkg/mod.py", "top", 4, 7, 5),  # if, and, comprehension if, ternary
        FunctionInfo("pkg/mod.py", "Outer.Inner.method", 14, 21, 4),  # for, except, while
        FunctionInfo("pkg/mod.py", "Outer.run", 23, 26, 1),
        FunctionInfo("pkg/mod.py", "Outer.run.helper", 24, 25, 1),
    ]


def test_functions_restricts_and_min_complexity_filters():
    everything = mutations(SOURCE, "pkg/mod.py", min_complexity=1)
    assert {m.qualname for m in everything} == {"top", "Outer.Inner.method", "Outer.run", "Outer.run.helper"}
    assert {m.qualname for m in mutations(SOURCE, "pkg/mod.py")} == {"top", "Outer.Inner.method"}
    assert {m.qualname for m in mutations(SOURCE, "pkg/mod.py", min_complexity=5)} == {"top"}
    only = mutations(SOURCE, "pkg/mod.py", functions={"Outer.Inner.method", "missing"})
    assert only and {m.qualname for m in only} == {"Outer.Inner.method"}
    assert all(14 <= m.line <= 21 for m in only)
    assert mutations(SOURCE, "pkg/mod.py", functions=set()) == []


def test_operators_argument_and_unknown_operator():
    found = mutations(SOURCE, "pkg/mod.py", operators=["flip_comparison", "off_by_one"])
    assert {m.operator for m in found} == {"flip_comparison", "off_by_one"}
    with pytest.raises(KeyError):
        mutations(SOURCE, "pkg/mod.py", operators=["no_such_operator"])


def test_mutations_are_deterministic_and_ordered():
    first = mutations(SOURCE, "pkg/mod.py", min_complexity=1)
    assert first == mutations(SOURCE, "pkg/mod.py", min_complexity=1)
    order = list(OPERATORS)
    keys = [(m.qualname, order.index(m.operator)) for m in first]
    functions = [f.qualname for f in list_functions(SOURCE, "pkg/mod.py")]
    assert keys == sorted(keys, key=lambda k: (functions.index(k[0]), k[1]))


def test_patch_for_a_file_without_final_newline(roundtrip):
    source = "def f(a):\n    return a < 1"
    (m,) = mutations(source, "nonl.py", operators=["flip_comparison"], min_complexity=1)
    assert m.mutated == "def f(a):\n    return a >= 1"
    assert "\\ No newline at end of file" in m.patch
    roundtrip(m)


# -- the sample library ----------------------------------------------------------------------

LIBRARY = Path(__file__).resolve().parents[2] / "examples" / "cartcalc" / "cartcalc"


@pytest.fixture(scope="module")
def library() -> list[Mutation]:
    files = sorted(LIBRARY.glob("*.py"))
    assert files, f"sample library missing at {LIBRARY}"
    found: list[Mutation] = []
    for file in files:
        found += mutations(file.read_text(), f"cartcalc/{file.name}")
    return found


def test_library_mutants(library):
    for m in library:
        compile(m.mutated, m.path, "exec")
        assert hunks(m) == 1, m.patch
        assert m.mutated.splitlines()[: m.line - 4] == m.original.splitlines()[: m.line - 4]  # line is near the change
    patches = [m.patch for m in library]
    assert len(patches) == len(set(patches))
    per_operator = Counter(m.operator for m in library)
    assert len(library) >= 50
    assert len(per_operator) >= 8


def test_library_patches_apply(library, roundtrip):
    for m in sample(library, 26, seed=7):
        roundtrip(m)


def test_sample_is_seeded_and_spread(library):
    picked = sample(library, 20, seed=3)
    assert len(picked) == 20 and len({m.patch for m in picked}) == 20
    assert picked == sample(library, 20, seed=3)
    assert picked == sample(list(reversed(library)), 20, seed=3)  # input order does not matter
    assert picked != sample(library, 20, seed=4)
    assert len({m.operator for m in picked}) >= 10
    per_function = Counter((m.path, m.qualname) for m in picked)
    assert max(per_function.values()) <= 2
    assert len(sample(library, 10_000, seed=1)) == len(library)
    assert sample(library, 0, seed=1) == [] and sample([], 5, seed=1) == []


def test_identical_functions_are_mutated_one_at_a_time():
    # The two methods have the same text, so the engine cannot splice by text and regenerates the file.
    body = "    def f(self, a):\n        if a:\n            return a < 1\n        return 0\n"
    source = f"class A:\n{body}\n\nclass B:\n{body}"
    found = mutations(source, "dup.py", operators=["flip_comparison"])
    assert [(m.qualname, m.line) for m in found] == [("A.f", 4), ("B.f", 11)]
    assert found[0].mutated == source.replace("a < 1", "a >= 1", 1)
    second = source.rindex("a < 1")
    assert found[1].mutated == source[:second] + "a >= 1" + source[second + len("a < 1") :]


def test_mutations_pickle():
    import pickle

    (m, *_) = mutations(SOURCE, "pkg/mod.py")
    assert m.patch
    assert pickle.loads(pickle.dumps(m)) == m
