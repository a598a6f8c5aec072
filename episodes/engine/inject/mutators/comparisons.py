"""``flip_comparison``: negate one comparison operator (``<`` ↔ ``>=``, ``==`` ↔ ``!=``, ``in`` ↔ ``not in`` ...)."""
from __future__ import annotations

from typing import Iterator

import libcst as cst

from episodes.engine.inject.mutators.core import Context, FunctionScope, Mutator, Site, find

FLIPS: dict[type, type] = {
    cst.LessThan: cst.GreaterThanEqual,
    cst.GreaterThanEqual: cst.LessThan,
    cst.LessThanEqual: cst.GreaterThan,
    cst.GreaterThan: cst.LessThanEqual,
    cst.Equal: cst.NotEqual,
    cst.NotEqual: cst.Equal,
    cst.Is: cst.IsNot,
    cst.IsNot: cst.Is,
    cst.In: cst.NotIn,
    cst.NotIn: cst.In,
}


def converted(op: cst.BaseCompOp, kind: type) -> cst.BaseCompOp:
    """An operator of ``kind`` keeping ``op``'s surrounding whitespace."""
    return kind(whitespace_before=op.whitespace_before, whitespace_after=op.whitespace_after)


def op_text(op: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(op).strip()


class FlipComparison(Mutator):
    name = "flip_comparison"

    def sites(self, ctx: Context, scope: FunctionScope) -> Iterator[Site]:
        for target in find(scope.nodes, cst.ComparisonTarget):
            kind = FLIPS.get(type(target.operator))
            if kind is None:
                continue
            new_op = converted(target.operator, kind)
            yield Site(
                target,
                target.with_changes(operator=new_op),
                f"`{op_text(target.operator)}` → `{op_text(new_op)}` in {scope.info.qualname}",
                anchor=target.operator,
            )
