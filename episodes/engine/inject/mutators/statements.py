"""Statement-level operators: ``remove_assignment``, ``remove_loop``, ``remove_wrapper``, ``shuffle_statements``."""
from __future__ import annotations

from typing import Iterator

import libcst as cst

from episodes.engine.inject.mutators.core import (
    Context,
    FunctionScope,
    Mutator,
    Site,
    dotted_name,
    find,
    flattened,
    names_in,
    statements_of,
    without_statement,
)

ASSIGNMENTS = (cst.Assign, cst.AugAssign, cst.AnnAssign)


def _block_of(ctx: Context, stmt: cst.BaseStatement) -> cst.IndentedBlock | None:
    """The indented block that holds ``stmt``, if it is not the only statement there."""
    block = ctx.parent(stmt)
    if isinstance(block, cst.IndentedBlock) and len(block.body) > 1:
        return block
    return None


class RemoveAssignment(Mutator):
    name = "remove_assignment"

    def sites(self, ctx: Context, scope: FunctionScope) -> Iterator[Site]:
        for small in find(scope.nodes, ASSIGNMENTS):
            if isinstance(small, cst.AnnAssign) and small.value is None:
                continue  # a bare annotation assigns nothing
            line = ctx.parent(small)
            description = f"removed `{ctx.code(small)}` in {scope.info.qualname}"
            if len(line.body) > 1:  # ``a = 1; b = 2``: drop one of them from the line
                rest = [s for s in line.body if s is not small]
                rest[-1] = rest[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
                yield Site(line, line.with_changes(body=rest), description, anchor=small)
                continue
            block = _block_of(ctx, line) if isinstance(line, cst.SimpleStatementLine) else None
            if block is not None:
                yield Site(block, without_statement(block, line), description, anchor=small)


class RemoveLoop(Mutator):
    name = "remove_loop"

    def sites(self, ctx: Context, scope: FunctionScope) -> Iterator[Site]:
        for loop in find(scope.nodes, (cst.For, cst.While)):
            block = _block_of(ctx, loop)
            if block is None:
                continue
            if isinstance(loop, cst.For):
                head = f"for {ctx.code(loop.target, 30)} in {ctx.code(loop.iter, 30)}"
            else:
                head = f"while {ctx.code(loop.test)}"
            description = f"removed loop `{head}` in {scope.info.qualname}"
            yield Site(block, without_statement(block, loop), description, anchor=loop)


class RemoveWrapper(Mutator):
    """Unwrap ``with`` into its body, ``try``/``except`` into the try body (then else, then finally).

    A ``with ... as name`` whose body uses ``name`` is left alone: unwrapping it is a NameError,
    not a subtle bug."""

    name = "remove_wrapper"

    def sites(self, ctx: Context, scope: FunctionScope) -> Iterator[Site]:
        for node in find(scope.nodes, (cst.With, cst.Try, cst.TryStar)):
            block = ctx.parent(node)
            if not isinstance(block, cst.IndentedBlock):
                continue
            if isinstance(node, cst.With):
                bound = {name for item in node.items if item.asname for name in names_in(item.asname.name)}
                if bound & names_in(node.body):
                    continue
                head = f"with {', '.join(ctx.code(item.item, 40) for item in node.items)}"
                body = statements_of(node.body)
            else:
                if not node.handlers:
                    continue
                head = "try/except"
                body = statements_of(node.body)
                for extra in (node.orelse, node.finalbody):
                    if extra is not None:
                        body += statements_of(extra.body)
            yield Site(block, flattened(block, node, body), f"unwrapped `{head}` in {scope.info.qualname}", anchor=node)


SHUFFLEABLE = (cst.Assign, cst.AugAssign, cst.AnnAssign, cst.Expr)


def _reads_writes(stmt: cst.SimpleStatementLine) -> tuple[set[str], set[str]] | None:
    """Names ``stmt`` reads and assigns, or None when it is not a shuffleable simple statement."""
    if len(stmt.body) != 1 or not isinstance(stmt.body[0], SHUFFLEABLE):
        return None
    small = stmt.body[0]
    if isinstance(small, cst.Expr):
        if isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString)):
            return None  # a docstring or a bare string
        return names_in(small.value), set()
    if isinstance(small, cst.AnnAssign) and small.value is None:
        return None
    targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
    writes: set[str] = set()
    reads = names_in(small.value)
    for target in targets:
        for element in _flatten_target(target):
            dotted = dotted_name(element)
            if dotted:
                writes.add(dotted)
            else:  # ``a[i] = v`` writes into ``a`` and reads ``i``
                reads |= names_in(element)
                base = element
                while isinstance(base, (cst.Subscript, cst.Attribute)):
                    base = base.value
                if dotted_name(base):
                    writes.add(dotted_name(base))
    if isinstance(small, cst.AugAssign):
        reads |= writes
    return reads, writes


def _calls(node: cst.CSTNode) -> bool:
    return isinstance(node, cst.Call) or any(_calls(child) for child in node.children)


def _flatten_target(target: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(target, (cst.Tuple, cst.List)):
        return [e for el in target.elements for e in _flatten_target(el.value)]
    if isinstance(target, cst.StarredElement):
        return _flatten_target(target.value)
    return [target]


def _conflict(names: set[str], assigned: set[str]) -> bool:
    """Does reading ``names`` depend on assigning ``assigned`` (``self.a`` vs ``self.a.b`` vs ``self``)?"""
    return any(n == a or n.startswith(a + ".") or a.startswith(n + ".") for n in names for a in assigned)


class ShuffleStatements(Mutator):
    name = "shuffle_statements"

    def sites(self, ctx: Context, scope: FunctionScope) -> Iterator[Site]:
        for block in find(scope.nodes, cst.IndentedBlock):
            body = list(block.body)
            for i in range(len(body) - 1):
                first, second = body[i], body[i + 1]
                if not (isinstance(first, cst.SimpleStatementLine) and isinstance(second, cst.SimpleStatementLine)):
                    continue
                a, b = _reads_writes(first), _reads_writes(second)
                if a is None or b is None:
                    continue
                (reads_a, writes_a), (reads_b, writes_b) = a, b
                if _conflict(reads_a, writes_b) or _conflict(reads_b, writes_a) or _conflict(writes_a, writes_b):
                    continue
                if not (_calls(first) or _calls(second)):
                    continue  # two side-effect free statements: the swap is an equivalent mutant
                swapped = list(body)
                if any(line.comment for line in (*first.leading_lines, *second.leading_lines)):
                    # Comments above a statement describe it: they move with it.
                    swapped[i], swapped[i + 1] = second, first
                else:  # blank lines stay where they are
                    swapped[i] = second.with_changes(leading_lines=first.leading_lines)
                    swapped[i + 1] = first.with_changes(leading_lines=second.leading_lines)
                yield Site(
                    block,
                    block.with_changes(body=swapped),
                    f"swapped `{ctx.code(first.body[0], 40)}` and `{ctx.code(second.body[0], 40)}`"
                    f" in {scope.info.qualname}",
                    anchor=first,
                )
