"""``invert_if_else`` (swap the two bodies) and ``remove_condition`` (run an ``if`` body always, drop an ``elif``)."""
from __future__ import annotations

from typing import Iterator

import libcst as cst

from episodes.engine.inject.mutators.core import Context, FunctionScope, Mutator, Site, find, flattened, statements_of


class InvertIfElse(Mutator):
    name = "invert_if_else"

    def sites(self, ctx: Context, scope: FunctionScope) -> Iterator[Site]:
        for node in find(scope.nodes, cst.If):
            if not isinstance(node.orelse, cst.Else):
                continue
            new = node.with_changes(body=node.orelse.body, orelse=node.orelse.with_changes(body=node.body))
            yield Site(node, new, f"swapped the bodies of `if {ctx.code(node.test)}` / `else` in {scope.info.qualname}")


class RemoveCondition(Mutator):
    name = "remove_condition"

    def sites(self, ctx: Context, scope: FunctionScope) -> Iterator[Site]:
        for node in find(scope.nodes, cst.If):
            parent = ctx.parent(node)
            if isinstance(parent, cst.If):  # an ``elif``: drop the branch
                yield Site(
                    parent,
                    parent.with_changes(orelse=node.orelse),
                    f"dropped `elif {ctx.code(node.test)}` in {scope.info.qualname}",
                    anchor=node,
                )
            elif node.orelse is None and isinstance(parent, cst.IndentedBlock):
                yield Site(
                    parent,
                    flattened(parent, node, statements_of(node.body)),
                    f"`if {ctx.code(node.test)}` body runs unconditionally in {scope.info.qualname}",
                    anchor=node,
                )
