"""``off_by_one``: an integer constant ±1, and a non-literal slice bound or ``range()`` argument ±1."""
from __future__ import annotations

from typing import Iterator

import libcst as cst

from episodes.engine.inject.mutators.core import Context, FunctionScope, Mutator, Site, parenthesized


def _literal_value(node: cst.CSTNode) -> int | None:
    """The value of an integer literal, signed (``-2``) or not; None for anything else."""
    if isinstance(node, cst.Integer):
        return node.evaluated_value
    if (
        isinstance(node, cst.UnaryOperation)
        and isinstance(node.operator, cst.Minus)
        and isinstance(node.expression, cst.Integer)
        and not node.expression.lpar
    ):
        return -node.expression.evaluated_value
    return None


def _render(value: int, like: cst.Integer) -> str:
    text = like.value.lower()
    magnitude = abs(value)
    if text.startswith("0x"):
        return hex(magnitude)
    if text.startswith("0o"):
        return oct(magnitude)
    if text.startswith("0b"):
        return bin(magnitude)
    return str(magnitude)


def _literal(value: int, original: cst.BaseExpression, needs_parens: bool) -> cst.BaseExpression:
    integer = original if isinstance(original, cst.Integer) else original.expression
    digits = cst.Integer(_render(value, integer))
    node: cst.BaseExpression = digits if value >= 0 else cst.UnaryOperation(cst.Minus(), digits)
    lpar, rpar = list(original.lpar), list(original.rpar)
    if value < 0 and not lpar and needs_parens:
        lpar, rpar = [cst.LeftParen()], [cst.RightParen()]
    return node.with_changes(lpar=lpar, rpar=rpar)


def _shifted(node: cst.BaseExpression) -> bool:
    """``n + 1`` / ``n - 1``: the literal is mutated already, wrapping it again would undo it."""
    return (
        isinstance(node, cst.BinaryOperation)
        and isinstance(node.operator, (cst.Add, cst.Subtract))
        and _literal_value(node.right) is not None
    )


class OffByOne(Mutator):
    name = "off_by_one"

    def sites(self, ctx: Context, scope: FunctionScope) -> Iterator[Site]:
        where = scope.info.qualname
        for node in scope.nodes:
            value = _literal_value(node)
            if value is not None:
                if isinstance(node, cst.Integer) and _literal_value(ctx.parent(node)) is not None:
                    continue  # the digits of ``-2``: handled as the signed literal
                parent = ctx.parent(node)
                needs_parens = isinstance(parent, (cst.Attribute, cst.Subscript, cst.Call)) or (
                    isinstance(parent, cst.BinaryOperation)
                    and isinstance(parent.operator, cst.Power)
                    and parent.left is node
                )
                for delta in (1, -1):
                    new = _literal(value + delta, node, needs_parens)
                    yield Site(node, new, f"`{ctx.code(node)}` → `{ctx.code(new)}` in {where}")
            for bound in self._bounds(node):
                if _literal_value(bound) is not None or _shifted(bound):
                    continue
                for op, sign in ((cst.Add(), "+"), (cst.Subtract(), "-")):
                    new = cst.BinaryOperation(parenthesized(bound), op, cst.Integer("1"))
                    yield Site(bound, new, f"`{ctx.code(bound)}` → `{ctx.code(new)}` in {where}")

    @staticmethod
    def _bounds(node: cst.CSTNode) -> list[cst.BaseExpression]:
        if isinstance(node, cst.Slice):
            return [b for b in (node.lower, node.upper) if b is not None]
        if (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Name)
            and node.func.value == "range"
            and 1 <= len(node.args) <= 3
            and all(arg.keyword is None and not arg.star for arg in node.args)
        ):
            return [arg.value for arg in node.args[:2]]
        return []
