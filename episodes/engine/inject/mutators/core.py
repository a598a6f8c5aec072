"""Data types and the shared machinery of the procedural mutation engine.

Plain Python + LibCST; no Django.  A :class:`Context` holds one parsed file, the metadata
needed to report lines, and the nodes of each function body (nested function bodies belong
to the nested function).  Operators (:class:`Mutator` subclasses) yield :class:`Site` objects:
one node to replace and its replacement; the engine rebuilds the module along the node's
ancestor path, checks the result and turns it into a :class:`Mutation`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable, Iterator, Sequence, Union

import libcst as cst
from libcst._nodes.internal import CodegenState

from episodes.engine.git.workspace import unified_diff


@dataclass(frozen=True)
class FunctionInfo:
    path: str  # repo-relative, e.g. "cartcalc/money.py"
    qualname: str  # "Money.allocate" or "to_decimal"; nested functions: "outer.inner"
    start_line: int  # first line of the def (decorators excluded), 1-based
    end_line: int
    complexity: int  # 1 + branches (if/elif, for, while, except, bool ops, comprehension ifs, ternaries)


@dataclass(frozen=True)
class Mutation:
    operator: str
    path: str
    qualname: str
    line: int  # line of the changed node in the original source
    description: str
    original: str
    mutated: str

    @cached_property  # a property computed once (frozen dataclasses allow it: it bypasses __setattr__)
    def patch(self) -> str:
        """``git apply``-able unified diff from ``original`` to ``mutated``."""
        return unified_diff(self.path, self.original, self.mutated)


# -- the parsed file ------------------------------------------------------------------------


@dataclass(eq=False)
class FunctionScope:
    info: FunctionInfo
    node: cst.FunctionDef
    nodes: list[cst.CSTNode] = field(default_factory=list)  # body nodes owned by this function, pre-order


Replacement = Union[cst.CSTNode, cst.RemovalSentinel, cst.FlattenSentinel]


@dataclass(frozen=True, eq=False)
class Site:
    """Replace ``node`` by ``replacement``; ``anchor`` (default ``node``) gives the reported line."""

    node: cst.CSTNode
    replacement: Replacement
    description: str
    anchor: cst.CSTNode | None = None


class Context:
    def __init__(self, module: cst.Module, positions, parents: dict[int, cst.CSTNode], scopes: list[FunctionScope]):
        self.module = module
        self.positions = positions
        self.parents = parents
        self.scopes = scopes

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        return self.parents.get(id(node))

    def line(self, node: cst.CSTNode) -> int:
        return self.positions[node].start.line

    def code(self, node: cst.CSTNode, limit: int = 60) -> str:
        """Short one-line source text of ``node`` for descriptions."""
        text = " ".join(self.module.code_for_node(node).split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def replace(self, node: cst.CSTNode, replacement: Replacement, within: cst.CSTNode | None = None) -> cst.CSTNode:
        """``within`` (default: the module) with ``node`` replaced, rebuilding only ``node``'s ancestors."""
        within = self.module if within is None else within
        new: Replacement = replacement
        current = node
        while current is not within:
            parent = self.parent(current)
            if parent is None:
                raise LookupError(f"{type(node).__name__} is not inside {type(within).__name__}")
            new = replace_child(parent, current, new)
            current = parent
        assert isinstance(new, cst.CSTNode)
        return new

    def indents(self, node: cst.CSTNode) -> list[str]:
        """The indentation tokens in effect where ``node`` starts."""
        tokens = []
        current = self.parent(node)
        while current is not None:
            if isinstance(current, cst.IndentedBlock):
                tokens.append(self.module.default_indent if current.indent is None else current.indent)
            current = self.parent(current)
        return tokens[::-1]

    def code_in_place(self, node: cst.CSTNode, indents: list[str]) -> str:
        """Source text of ``node`` generated at the indentation ``indents``."""
        state = CodegenState(
            default_indent=self.module.default_indent,
            default_newline=self.module.default_newline,
            indent_tokens=list(indents),
        )
        node._codegen(state)
        return "".join(state.tokens)


def replace_child(parent: cst.CSTNode, old: cst.CSTNode, new: Replacement) -> cst.CSTNode:
    for f in dataclasses.fields(parent):
        value = getattr(parent, f.name)
        if value is old:
            if not isinstance(new, cst.CSTNode):
                raise ValueError(f"cannot remove or flatten the single field {type(parent).__name__}.{f.name}")
            return parent.with_changes(**{f.name: new})
        if isinstance(value, (list, tuple)) and any(item is old for item in value):
            items: list = []
            for item in value:
                if item is not old:
                    items.append(item)
                elif isinstance(new, cst.FlattenSentinel):
                    items.extend(new.nodes)
                elif isinstance(new, cst.CSTNode):
                    items.append(new)
            return parent.with_changes(**{f.name: type(value)(items)})
    raise LookupError(f"{type(old).__name__} is not a child of {type(parent).__name__}")


class Mutator:
    """One mutation operator: ``sites`` yields every single-site change in one function."""

    name: str = ""

    def sites(self, ctx: Context, scope: FunctionScope) -> Iterator[Site]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# -- helpers shared by operators -------------------------------------------------------------

ATOMIC = (
    cst.Name,
    cst.Attribute,
    cst.Call,
    cst.Subscript,
    cst.Integer,
    cst.Float,
    cst.Imaginary,
    cst.SimpleString,
    cst.ConcatenatedString,
    cst.FormattedString,
    cst.List,
    cst.Tuple,
    cst.Dict,
    cst.Set,
    cst.ListComp,
    cst.SetComp,
    cst.DictComp,
    cst.GeneratorExp,
    cst.Ellipsis,
)


def parenthesized(node: cst.BaseExpression) -> cst.BaseExpression:
    """``node`` wrapped in parentheses unless it is atomic or already parenthesized."""
    if isinstance(node, ATOMIC) or getattr(node, "lpar", None):
        return node
    return node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def statements_of(body: cst.BaseSuite) -> list[cst.BaseStatement]:
    """The statements of a suite as standalone statements (a one-line suite becomes a line)."""
    if isinstance(body, cst.IndentedBlock):
        return list(body.body)
    assert isinstance(body, cst.SimpleStatementSuite)
    return [cst.SimpleStatementLine(body=list(body.body), trailing_whitespace=body.trailing_whitespace)]


def with_leading_lines(stmts: list[cst.BaseStatement], lines: Sequence[cst.EmptyLine]) -> list[cst.BaseStatement]:
    """Put ``lines`` (comments, blank lines) in front of the first of ``stmts``."""
    if not lines or not stmts:
        return stmts
    first = stmts[0]
    return [first.with_changes(leading_lines=[*lines, *first.leading_lines]), *stmts[1:]]


def without_statement(block: cst.IndentedBlock, stmt: cst.BaseStatement) -> cst.IndentedBlock:
    """``block`` minus ``stmt``; the comments above ``stmt`` move to the statement after it."""
    body = list(block.body)
    index = next(i for i, s in enumerate(body) if s is stmt)
    del body[index]
    if index < len(body):
        moved = list(stmt.leading_lines)
        following = body[index].leading_lines
        if following and following[0].comment is None:
            # Both end/start with blank lines: drop the ones right above the removed statement so
            # the gap does not grow.  They touch the removed line, so the diff stays one hunk.
            while moved and moved[-1].comment is None:
                moved.pop()
        body[index : index + 1] = with_leading_lines([body[index]], moved)
    return block.with_changes(body=body)


def flattened(block: cst.IndentedBlock, stmt: cst.BaseStatement, replacement: list[cst.BaseStatement]):
    """``block`` with ``stmt`` replaced by ``replacement`` (which inherits ``stmt``'s leading lines)."""
    body = []
    for s in block.body:
        if s is stmt:
            body.extend(with_leading_lines(replacement, stmt.leading_lines))
        else:
            body.append(s)
    return block.with_changes(body=body)


def names_in(node: cst.CSTNode) -> set[str]:
    """Every ``Name`` in ``node``, and the dotted form of every plain attribute chain."""
    found: set[str] = set()

    def visit(n: cst.CSTNode) -> None:
        if isinstance(n, cst.Name):
            found.add(n.value)
        elif isinstance(n, cst.Attribute):
            dotted = dotted_name(n)
            if dotted:
                found.add(dotted)
        for child in n.children:
            visit(child)

    visit(node)
    return found


def dotted_name(node: cst.CSTNode) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted_name(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def find(nodes: Iterable[cst.CSTNode], kind: type | tuple[type, ...]) -> Iterator:
    for node in nodes:
        if isinstance(node, kind):
            yield node


