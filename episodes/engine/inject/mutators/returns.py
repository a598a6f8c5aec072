"""``remove_return_value``: ``return expr`` → ``return None``; an early ``return`` inside an ``if`` removed."""
from __future__ import annotations

from typing import Iterator

import libcst as cst

from episodes.engine.inject.mutators.core import Context, FunctionScope, Mutator, Site, find, without_statement


class RemoveReturnValue(Mutator):
    name = "remove_return_value"

    def sites(self, ctx: Context, scope: FunctionScope) -> Iterator[Site]:
        where = scope.info.qualname
        for node in find(scope.nodes, cst.Return):
            value = node.value
            if value is not None and not (isinstance(value, cst.Name) and value.value == "None"):
                new = node.with_changes(value=cst.Name("None"), whitespace_after_return=cst.SimpleWhitespace(" "))
                yield Site(node, new, f"`return {ctx.code(value, 40)}` → `return None` in {where}")
            site = self._early_exit(ctx, node)
            if site is not None:
                yield Site(site[0], site[1], f"removed early `{ctx.code(node, 40)}` in {where}", anchor=node)

    @staticmethod
    def _early_exit(ctx: Context, node: cst.Return):
        """Replacement that removes ``node`` when it is directly inside an ``if`` that is followed by more code."""
        holder = ctx.parent(node)  # SimpleStatementLine or SimpleStatementSuite
        if len(holder.body) != 1:
            return None
        container = holder if isinstance(holder, cst.SimpleStatementSuite) else ctx.parent(holder)
        branch = ctx.parent(container)
        if not isinstance(branch, (cst.If, cst.Else)):
            return None
        statement = branch
        while isinstance(ctx.parent(statement), (cst.If, cst.Else)):  # up through elif / else to the ``if``
            statement = ctx.parent(statement)
        block = ctx.parent(statement)
        if not isinstance(block, cst.IndentedBlock) or block.body[-1] is statement:
            return None
        if isinstance(container, cst.IndentedBlock) and len(container.body) > 1:
            return container, without_statement(container, holder)
        return node, cst.Pass()
