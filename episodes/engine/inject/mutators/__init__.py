"""Procedural (no-LLM) mutation engine: SWE-smith style single-site AST mutations via LibCST.

Plain Python, no Django.  ``mutations(source, path)`` enumerates every single-site change of
every operator in the non-trivial functions of one file; ``sample`` picks a seeded, spread-out
subset.  Each operator lives in its own small module and registers in :data:`OPERATORS`.
"""
from __future__ import annotations

import ast

from episodes.engine.inject.mutators.arithmetic import ChangeOperator, SwapOperands
from episodes.engine.inject.mutators.booleans import BreakBoolChain
from episodes.engine.inject.mutators.calls import SwapCallArguments
from episodes.engine.inject.mutators.comparisons import FlipComparison
from episodes.engine.inject.mutators.conditionals import InvertIfElse, RemoveCondition
from episodes.engine.inject.mutators.constants import OffByOne
from episodes.engine.inject.mutators.core import Context, FunctionInfo, FunctionScope, Mutation, Mutator, Site
from episodes.engine.inject.mutators.functions import build_context, list_functions
from episodes.engine.inject.mutators.returns import RemoveReturnValue
from episodes.engine.inject.mutators.sampling import sample, spread
from episodes.engine.inject.mutators.statements import RemoveAssignment, RemoveLoop, RemoveWrapper, ShuffleStatements

__all__ = [
    "FunctionInfo",
    "Mutation",
    "Mutator",
    "OPERATORS",
    "list_functions",
    "mutations",
    "sample",
    "spread",
]

OPERATORS: dict[str, Mutator] = {
    m.name: m
    for m in (
        FlipComparison(),
        ChangeOperator(),
        SwapOperands(),
        OffByOne(),
        InvertIfElse(),
        RemoveCondition(),
        RemoveAssignment(),
        RemoveLoop(),
        RemoveWrapper(),
        ShuffleStatements(),
        BreakBoolChain(),
        RemoveReturnValue(),
        SwapCallArguments(),
    )
}


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def _compiles(source: str | ast.Module) -> bool:
    try:
        compile(source, "<mutant>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


class _Splicer:
    """Regenerates one function at a time and splices it into the unchanged rest of the file.

    Generating a whole module per mutant is the slow part of LibCST; a function is small.  The
    function's text (with its decorators and the comments above it) is found once in the
    original, then every mutant of it is ``prefix + new function text + suffix``.  Validity and
    no-op checks parse only the function (under an ``if 1:`` when it is indented)."""

    def __init__(self, ctx: Context, scope: FunctionScope, source: str):
        self.ctx, self.scope, self.source = ctx, scope, source
        self.indents = ctx.indents(scope.node)
        text = ctx.code_in_place(scope.node, self.indents)
        at = source.find(text)
        self.exact = at >= 0 and source.find(text, at + 1) < 0
        if self.exact:
            self.prefix, self.suffix = source[:at], source[at + len(text) :]
            tree = _parse(self._wrap(text))
            self.exact = tree is not None
        if not self.exact:  # fall back to generating and parsing the whole module
            tree = _parse(source)
        self.original = ast.dump(tree)

    def _wrap(self, text: str) -> str:
        return "if 1:\n" + text if self.indents else text

    def mutant(self, site: Site) -> str | None:
        """The mutated file, or None when it does not compile or changes nothing that matters."""
        if not self.exact:
            mutated = self.ctx.replace(site.node, site.replacement).code
            tree = _parse(mutated)
            return mutated if tree is not None and ast.dump(tree) != self.original and _compiles(tree) else None
        function = self.ctx.replace(site.node, site.replacement, within=self.scope.node)
        text = self.ctx.code_in_place(function, self.indents)
        tree = _parse(self._wrap(text))
        if tree is None or ast.dump(tree) == self.original:
            return None
        mutated = self.prefix + text + self.suffix
        if not _compiles(tree) and not _compiles(mutated):
            return None  # e.g. a nonlocal needs the enclosing function: only the whole file tells
        return mutated


def mutations(
    source: str,
    path: str,
    *,
    functions: set[str] | None = None,
    operators: list[str] | None = None,
    min_complexity: int = 2,
) -> list[Mutation]:
    """Every single-site mutation of the chosen operators in the chosen functions of ``source``.

    ``functions`` restricts to those qualnames (e.g. the ones the tests cover); functions with a
    complexity below ``min_complexity`` are skipped.  Mutants that do not compile, that only
    change formatting or comments, or that repeat an earlier mutant are dropped.  The order is
    deterministic: functions in source order, then operators in registry order, then sites.
    """
    names = list(OPERATORS) if operators is None else list(operators)
    unknown = [n for n in names if n not in OPERATORS]
    if unknown:
        raise KeyError(f"unknown mutation operators: {', '.join(unknown)}")
    ctx = build_context(source, path)
    seen: set[str] = {source}
    found: list[Mutation] = []
    for scope in ctx.scopes:
        if functions is not None and scope.info.qualname not in functions:
            continue
        if scope.info.complexity < min_complexity:
            continue
        splicer = _Splicer(ctx, scope, source)
        for name in names:
            for site in OPERATORS[name].sites(ctx, scope):
                mutated = splicer.mutant(site)
                if mutated is None or mutated in seen:
                    continue
                seen.add(mutated)
                found.append(
                    Mutation(
                        operator=name,
                        path=path,
                        qualname=scope.info.qualname,
                        line=ctx.line(site.anchor or site.node),
                        description=site.description,
                        original=source,
                        mutated=mutated,
                    )
                )
    return found
