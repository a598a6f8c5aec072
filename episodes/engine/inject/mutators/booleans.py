"""``break_bool_chain``: drop one operand of an ``and``/``or`` chain."""
from __future__ import annotations

from typing import Iterator

import libcst as cst

from episodes.engine.inject.mutators.core import Context, FunctionScope, Mutator, Site, find


def _keep(node: cst.BooleanOperation, child: cst.BaseExpression) -> cst.BaseExpression:
    """``child`` standing in for ``node``; ``node``'s parentheses stay where they were."""
    if node.lpar and not child.lpar:
        return child.with_changes(lpar=node.lpar, rpar=node.rpar)
    return child


class BreakBoolChain(Mutator):
    name = "break_bool_chain"

    def sites(self, ctx: Context, scope: FunctionScope) -> Iterator[Site]:
        # ``a and b and c`` is ((a and b) and c): each node can lose its right operand, and its left
        # one unless that is the rest of the same chain (that would drop several operands at once).
        for node in find(scope.nodes, cst.BooleanOperation):
            op = node.operator._get_token()
            left = node.left
            where = f"from `{op}` chain in {scope.info.qualname}"
            same_chain = (
                isinstance(left, cst.BooleanOperation) and type(left.operator) is type(node.operator) and not left.lpar
            )
            if not same_chain:
                yield Site(node, _keep(node, node.right), f"dropped `{ctx.code(left)}` {where}", anchor=left)
            yield Site(node, _keep(node, left), f"dropped `{ctx.code(node.right)}` {where}", anchor=node.right)
