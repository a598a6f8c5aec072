"""Finding the functions of a file: qualnames, line ranges, complexity and owned body nodes."""
from __future__ import annotations

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from episodes.engine.inject.mutators.core import Context, FunctionInfo, FunctionScope

# Nodes that add a branch to a function's complexity.
BRANCHES = (
    cst.If,
    cst.For,
    cst.While,
    cst.ExceptHandler,
    cst.ExceptStarHandler,
    cst.BooleanOperation,
    cst.CompIf,
    cst.IfExp,
    cst.MatchCase,
)


def build_context(source: str, path: str) -> Context:
    """Parse ``source`` and collect every function with the nodes of its body."""
    wrapper = MetadataWrapper(cst.parse_module(source), unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    module = wrapper.module
    parents: dict[int, cst.CSTNode] = {}
    scopes: list[FunctionScope] = []

    def walk(node: cst.CSTNode, scope: FunctionScope | None, names: tuple[str, ...]) -> None:
        if isinstance(node, cst.FunctionDef):
            qualname = ".".join((*names, node.name.value))
            pos = positions[node]
            inner = FunctionScope(FunctionInfo(path, qualname, pos.start.line, pos.end.line, 1), node)
            scopes.append(inner)
            for child in node.children:
                parents[id(child)] = node
                if child is node.body:
                    walk(child, inner, (*names, node.name.value))
                else:
                    walk(child, scope, names)
            return
        if isinstance(node, cst.Annotation):
            scope = None  # annotations are not executable code worth mutating
        if scope is not None:
            scope.nodes.append(node)
        if isinstance(node, cst.ClassDef):
            names = (*names, node.name.value)
        for child in node.children:
            parents[id(child)] = node
            walk(child, scope, names)

    walk(module, None, ())
    for i, scope in enumerate(scopes):
        complexity = 1 + sum(isinstance(n, BRANCHES) for n in scope.nodes)
        info = scope.info
        scopes[i] = FunctionScope(
            FunctionInfo(info.path, info.qualname, info.start_line, info.end_line, complexity), scope.node, scope.nodes
        )
    return Context(module, positions, parents, scopes)


def list_functions(source: str, path: str) -> list[FunctionInfo]:
    """Every function and method in ``source``, in source order."""
    return [scope.info for scope in build_context(source, path).scopes]
