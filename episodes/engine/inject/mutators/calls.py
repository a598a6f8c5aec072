"""``swap_call_arguments``: swap two adjacent positional arguments that are both names or both same-type literals."""
from __future__ import annotations

from typing import Iterator

import libcst as cst

from episodes.engine.inject.mutators.core import Context, FunctionScope, Mutator, Site, find

SYMMETRIC = {"max", "min"}  # swapping their arguments changes nothing


def _kind(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.Name):
        return "name"
    if isinstance(node, (cst.Integer, cst.Float, cst.Imaginary)):
        return type(node).__name__
    if isinstance(node, cst.SimpleString):
        return "bytes" if "b" in node.prefix.lower() else "str"
    return None


class SwapCallArguments(Mutator):
    name = "swap_call_arguments"

    def sites(self, ctx: Context, scope: FunctionScope) -> Iterator[Site]:
        for call in find(scope.nodes, cst.Call):
            if isinstance(call.func, cst.Name) and call.func.value in SYMMETRIC:
                continue
            args = list(call.args)
            for i in range(len(args) - 1):
                a, b = args[i], args[i + 1]
                if a.keyword or b.keyword or a.star or b.star:
                    continue
                kind = _kind(a.value)
                if kind is None or kind != _kind(b.value) or a.value.deep_equals(b.value):
                    continue
                swapped = list(args)
                swapped[i] = a.with_changes(value=b.value)
                swapped[i + 1] = b.with_changes(value=a.value)
                new = call.with_changes(args=swapped)
                yield Site(
                    call,
                    new,
                    f"swapped arguments `{ctx.code(a.value, 30)}`, `{ctx.code(b.value, 30)}`"
                    f" of `{ctx.code(call.func, 40)}(…)` in {scope.info.qualname}",
                    anchor=a,
                )
