"""Realism of a procedural mutation: would it pass a reviewer as a slip a person could make?

Plain Python (``ast``), no Django.  ``score(mutation)`` gives 0..1 and the reasons (notes).
A static pass over the mutated function catches what no person writes — an operator invalid
for the operand types the code shows (``msg -= f"…"``, ``[] - x``), a deleted assignment that
leaves a name undefined, ``return None`` replacing a value, a body reduced to ``pass`` — and
the changes that do look like real bugs (a boundary, a comparison, a boolean chain, an
off-by-one, swapped same-type arguments) score high.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

from episodes.engine.git import patches
from episodes.engine.inject.mutators.core import Mutation

# Base score of each operator when nothing in the code says otherwise.
BASE: dict[str, float] = {
    "flip_comparison": 0.9,
    "off_by_one": 0.8,
    "break_bool_chain": 0.8,
    "swap_call_arguments": 0.8,
    "swap_operands": 0.7,
    "change_operator": 0.7,
    "invert_if_else": 0.6,
    "remove_condition": 0.6,
    "remove_assignment": 0.55,
    "remove_wrapper": 0.5,
    "shuffle_statements": 0.5,
    "remove_loop": 0.35,
    "remove_return_value": 0.6,  # the early-return removal; `return None` is scored below
}
DEFAULT_BASE = 0.5

SEQUENCE = {"str", "list", "tuple", "bytes"}
COLLECTION = SEQUENCE | {"dict", "set"}
# Operators valid for a kind (left operand); anything else raises TypeError at once.
VALID_OPS: dict[str, set[type]] = {
    "str": {ast.Add, ast.Mult, ast.Mod},
    "bytes": {ast.Add, ast.Mult, ast.Mod},
    "list": {ast.Add, ast.Mult},
    "tuple": {ast.Add, ast.Mult},
    "dict": {ast.BitOr},
    "set": {ast.BitOr, ast.BitAnd, ast.Sub, ast.BitXor},
}
OP_TEXT = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
           ast.BitAnd: "&", ast.BitOr: "|", ast.LShift: "<<", ast.RShift: ">>", ast.BitXor: "^", ast.Pow: "**"}


@dataclass
class Realism:
    score: float
    notes: list[str] = field(default_factory=list)


def score(mutation: Mutation) -> Realism:
    """The realism of ``mutation`` (0 = no person writes it, 1 = a plausible slip) with notes."""
    base = BASE.get(mutation.operator, DEFAULT_BASE)
    notes: list[str] = []
    try:
        original, mutated = ast.parse(mutation.original), ast.parse(mutation.mutated)
    except (SyntaxError, ValueError):
        return Realism(base, [f"{mutation.operator}: base {base:.2f} (source not parseable for checks)"])
    old_fn = _function(original, mutation.qualname)
    new_fn = _function(mutated, mutation.qualname)
    scores = [base]
    notes.append(f"{mutation.operator}: base {base:.2f}")
    if new_fn is not None:
        kinds = _evident_kinds(new_fn)
        for s, note in (
            _type_errors(new_fn, kinds, mutation.line),
            _undefined(old_fn, new_fn),
            _emptied(new_fn),
            _returns(mutation, old_fn, new_fn),
            _call_arguments(mutation, new_fn),
            _off_by_one(mutation),
        ):
            if note:
                scores.append(s)
                notes.append(note)
    # Penalties win (the lowest score); a bonus only raises the base when nothing penalised it.
    low = min(scores)
    final = low if low < base else max(scores)
    return Realism(round(final, 2), notes)


# -- finding things ------------------------------------------------------------------------


def _function(tree: ast.Module, qualname: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    nodes: list[ast.AST] = [tree]
    found = None
    for part in qualname.split("."):
        found = None
        for parent in nodes:
            for child in ast.iter_child_nodes(parent):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and child.name == part:
                    found = child
                    break
            if found is not None:
                break
        if found is None:
            return None
        nodes = [found]
    return found if isinstance(found, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def _kind(node: ast.AST, kinds: dict[str, str]) -> str | None:
    """The type an expression evidently has (a literal, a constructor call, a known local)."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or node.value is None:
            return None
        return {str: "str", bytes: "bytes", int: "number", float: "number", complex: "number"}.get(type(node.value))
    if isinstance(node, ast.JoinedStr):
        return "str"
    if isinstance(node, (ast.List, ast.ListComp)):
        return "list"
    if isinstance(node, ast.Tuple):
        return "tuple"
    if isinstance(node, (ast.Dict, ast.DictComp)):
        return "dict"
    if isinstance(node, (ast.Set, ast.SetComp)):
        return "set"
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name) and node.func.id in ("str", "list", "tuple", "dict", "set", "bytes"):
            return node.func.id
        if isinstance(node.func, ast.Name) and node.func.id in ("len", "int", "float", "abs", "round"):
            return "number"
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("join", "format", "strip", "lower", "upper",
                                                                       "replace") and _kind(node.func.value, kinds) == "str":
            return "str"
    if isinstance(node, ast.Name):
        return kinds.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _kind(node.left, kinds), _kind(node.right, kinds)
        if left in SEQUENCE or right in SEQUENCE:
            return left if left in SEQUENCE else right
    return None


def _evident_kinds(fn: ast.AST) -> dict[str, str]:
    """Locals whose every plain assignment gives the same evident collection/str kind."""
    seen: dict[str, set] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    seen.setdefault(target.id, set()).add(_kind(node.value, {}))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            seen.setdefault(node.target.id, set()).add(_kind(node.value, {}))
    return {name: next(iter(k)) for name, k in seen.items() if len(k) == 1 and None not in k}


# -- the rules -----------------------------------------------------------------------------


def _type_errors(fn: ast.AST, kinds: dict[str, str], line: int) -> tuple[float, str]:
    """An operator on the changed line that the operands' evident types do not support."""
    for node in ast.walk(fn):
        if getattr(node, "lineno", None) != line:
            continue
        if isinstance(node, ast.BinOp):
            left, right, op = _kind(node.left, kinds), _kind(node.right, kinds), type(node.op)
        elif isinstance(node, ast.AugAssign):
            left, right, op = _kind(node.target, kinds), _kind(node.value, kinds), type(node.op)
            if left is None and right in COLLECTION:
                left = right  # ``msg += f"…"`` → ``msg -= f"…"``: msg is a str too
        else:
            continue
        problem = _invalid(left, right, op)
        if problem:
            return 0.05, f"`{OP_TEXT.get(op, op.__name__)}` on {problem}: a TypeError at once, not a slip anyone writes"
    return 1.0, ""


def _invalid(left: str | None, right: str | None, op: type) -> str:
    for kind in (left, right):
        if kind in VALID_OPS and op not in VALID_OPS[kind]:
            return f"a {kind}"
    if op is ast.Mult and left in SEQUENCE and right in SEQUENCE:
        return f"two {left}s"
    if op is ast.Add and left and right and left != right and (left in COLLECTION or right in COLLECTION):
        return f"a {left} and a {right}"
    return ""


def _events(fn: ast.AST) -> dict[str, list[tuple[int, int, str]]]:
    """Per local name: (line, col, "load"|"store"|"aug") in source order."""
    out: dict[str, list] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name):
            kind = "load" if isinstance(node.ctx, ast.Load) else "store"
            out.setdefault(node.id, []).append((node.lineno, node.col_offset, kind))
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            out.setdefault(node.target.id, []).append((node.lineno, node.col_offset - 1, "aug"))
        elif isinstance(node, ast.arg):
            out.setdefault(node.arg, []).append((0, 0, "store"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                out.setdefault((alias.asname or alias.name).split(".")[0], []).append((node.lineno, 0, "store"))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not fn:
            out.setdefault(node.name, []).append((node.lineno, 0, "store"))
        elif isinstance(node, ast.ExceptHandler) and node.name:
            out.setdefault(node.name, []).append((node.lineno, 0, "store"))
    for events in out.values():
        events.sort()
    return out


def _undefined(old_fn, new_fn) -> tuple[float, str]:
    """A name the original function binds that the mutant uses before (or without) binding it."""
    if old_fn is None:
        return 1.0, ""
    old, new = _events(old_fn), _events(new_fn)
    for name, events in sorted(new.items()):
        before = old.get(name, [])
        if not any(kind in ("store", "aug") for _, _, kind in before):
            continue  # a global or builtin: not this function's to lose
        first = events[0][2]
        old_first = before[0][2]
        if first in ("load", "aug") and old_first == "store":
            what = "never bound" if not any(k == "store" for _, _, k in events) else "used before it is bound"
            return 0.1, f"`{name}` is {what} in the mutant: a NameError/UnboundLocalError, not a subtle bug"
    return 1.0, ""


def _body(fn) -> list[ast.stmt]:
    body = list(fn.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]
    return body


def _emptied(fn) -> tuple[float, str]:
    body = _body(fn)
    trivial = all(isinstance(s, ast.Pass) or (isinstance(s, ast.Return) and (s.value is None or (
        isinstance(s.value, ast.Constant) and s.value.value is None))) for s in body)
    if body and trivial:
        return 0.05, "the whole body is `pass`/`return None`: a deleted function, not a bug"
    return 1.0, ""


def _returns(mutation: Mutation, old_fn, new_fn) -> tuple[float, str]:
    if mutation.operator != "remove_return_value" or "→ `return None`" not in mutation.description:
        return 1.0, ""
    others = [n for n in ast.walk(old_fn) if isinstance(n, ast.Return) and (
        n.value is None or (isinstance(n.value, ast.Constant) and n.value.value is None))] if old_fn else []
    if others:
        return 0.3, "a value replaced by `return None` (the function returns None elsewhere too)"
    return 0.15, "`return None` replacing a value: a stub, not a slip a person makes"


def _call_arguments(mutation: Mutation, new_fn) -> tuple[float, str]:
    if mutation.operator != "swap_call_arguments":
        return 1.0, ""
    return 0.85, "swapped arguments of the same kind: a classic argument-order slip"


def _off_by_one(mutation: Mutation) -> tuple[float, str]:
    if mutation.operator != "off_by_one":
        return 1.0, ""
    if "+ 1`" in mutation.description or "- 1`" in mutation.description:
        return 0.9, "a slice/range bound ±1: a classic off-by-one"
    old = mutation.description.split("`")[1] if "`" in mutation.description else ""
    if old.lstrip("-") in ("0", "1", "2"):
        return 0.85, "a small index/boundary constant ±1"
    return 0.55, f"a magic number `{old}` ±1: plausible but arbitrary"


def changed_lines(patch: str) -> frozenset[tuple[str, int]]:
    """(file, line in the clean code) of the first line of each change block: two bugs with the
    same set (and the same failing tests) are near-duplicates."""
    found = set()
    for section in patches.parse(patch):
        path = section.target or section.source
        for hunk in section.parsed:
            line, first = hunk.source_start, True
            for text in hunk:
                if text.is_added or text.is_removed:
                    if first:
                        found.add((path, line))
                        first = False
                    line += 1 if text.is_removed else 0
                elif text.is_context:
                    line += 1
                    first = True  # a change block after context: its own line
    return frozenset(found)
