"""``change_operator`` (an operator of the same family) and ``swap_operands`` (``a - b`` → ``b - a``)."""
from __future__ import annotations

from typing import Iterator

import libcst as cst

from episodes.engine.inject.mutators.core import Context, FunctionScope, Mutator, Site, parenthesized

# Binary and augmented-assignment operators → their replacements within the family.
BINARY: dict[type, tuple[type, ...]] = {
    cst.Add: (cst.Subtract,),
    cst.Subtract: (cst.Add,),
    cst.Multiply: (cst.FloorDivide, cst.Divide),
    cst.FloorDivide: (cst.Multiply,),
    cst.Divide: (cst.Multiply,),
    cst.Modulo: (cst.FloorDivide,),
    cst.BitAnd: (cst.BitOr,),
    cst.BitOr: (cst.BitAnd,),
    cst.LeftShift: (cst.RightShift,),
    cst.RightShift: (cst.LeftShift,),
}
AUGMENTED: dict[type, tuple[type, ...]] = {
    cst.AddAssign: (cst.SubtractAssign,),
    cst.SubtractAssign: (cst.AddAssign,),
    cst.MultiplyAssign: (cst.FloorDivideAssign, cst.DivideAssign),
    cst.FloorDivideAssign: (cst.MultiplyAssign,),
    cst.DivideAssign: (cst.MultiplyAssign,),
    cst.ModuloAssign: (cst.FloorDivideAssign,),
    cst.BitAndAssign: (cst.BitOrAssign,),
    cst.BitOrAssign: (cst.BitAndAssign,),
    cst.LeftShiftAssign: (cst.RightShiftAssign,),
    cst.RightShiftAssign: (cst.LeftShiftAssign,),
}
BOOLEAN: dict[type, tuple[type, ...]] = {cst.And: (cst.Or,), cst.Or: (cst.And,)}


STRINGS = (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)


def _text(op: cst.CSTNode) -> str:
    return op._get_token() if hasattr(op, "_get_token") else type(op).__name__


def _swap(op: cst.CSTNode, kind: type) -> cst.CSTNode:
    return kind(whitespace_before=op.whitespace_before, whitespace_after=op.whitespace_after)


class ChangeOperator(Mutator):
    name = "change_operator"

    def sites(self, ctx: Context, scope: FunctionScope) -> Iterator[Site]:
        for node in scope.nodes:
            if isinstance(node, (cst.BinaryOperation, cst.AugAssign, cst.BooleanOperation)):
                if isinstance(node, cst.BinaryOperation):
                    table = BINARY
                else:
                    table = AUGMENTED if isinstance(node, cst.AugAssign) else BOOLEAN
                if isinstance(node.operator, cst.Modulo) and isinstance(node.left, STRINGS):
                    continue  # ``"%s" % x`` is formatting, not arithmetic
                for kind in table.get(type(node.operator), ()):
                    new_op = _swap(node.operator, kind)
                    yield Site(
                        node,
                        node.with_changes(operator=new_op),
                        f"`{_text(node.operator)}` → `{_text(new_op)}` in {scope.info.qualname}",
                        anchor=node.operator,
                    )


# Operators whose operands can be swapped to a different meaning.  ``+`` only when one side is
# a sequence literal (string or list concatenation); ``*``, ``&``, ``|``, ``^`` are treated as
# commutative, ``==``/``!=``/``is`` are symmetric and ``in`` swaps into nonsense.
SWAPPABLE_BINARY = (
    cst.Subtract,
    cst.Divide,
    cst.FloorDivide,
    cst.Modulo,
    cst.Power,
    cst.LeftShift,
    cst.RightShift,
    cst.MatrixMultiply,
)
SWAPPABLE_COMPARISON = (cst.LessThan, cst.LessThanEqual, cst.GreaterThan, cst.GreaterThanEqual)
SEQUENCE_LITERALS = (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString, cst.List, cst.Tuple)


class SwapOperands(Mutator):
    name = "swap_operands"

    def sites(self, ctx: Context, scope: FunctionScope) -> Iterator[Site]:
        for node in scope.nodes:
            if isinstance(node, cst.BinaryOperation):
                op = node.operator
                if isinstance(op, cst.Modulo) and isinstance(node.left, STRINGS):
                    continue  # ``"%s" % x``: formatting
                if not (
                    isinstance(op, SWAPPABLE_BINARY)
                    or (
                        isinstance(op, cst.Add)
                        and isinstance(node.left, SEQUENCE_LITERALS) != isinstance(node.right, SEQUENCE_LITERALS)
                    )
                ):
                    continue
                new = node.with_changes(left=parenthesized(node.right), right=parenthesized(node.left))
            elif isinstance(node, cst.Comparison):
                if len(node.comparisons) != 1 or not isinstance(node.comparisons[0].operator, SWAPPABLE_COMPARISON):
                    continue
                target = node.comparisons[0]
                new = node.with_changes(
                    left=parenthesized(target.comparator),
                    comparisons=[target.with_changes(comparator=parenthesized(node.left))],
                )
            else:
                continue
            yield Site(node, new, f"`{ctx.code(node)}` → `{ctx.code(new)}` in {scope.info.qualname}")
