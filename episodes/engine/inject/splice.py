"""AST work on one function of a file: locate it, blank its body, splice a new version into the
file by line range (plain Python, no Django)."""
from __future__ import annotations

import ast
import textwrap

from episodes.engine.inject.reply import _is_docstring, _single_function

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _find_def(tree: ast.AST, qualname: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    parts = qualname.split(".")
    scope: list[ast.stmt] = list(getattr(tree, "body", []))
    node = None
    for i, name in enumerate(parts):
        last = i == len(parts) - 1
        kinds = _FUNCTIONS if last else (ast.ClassDef, *_FUNCTIONS)
        matches = [n for n in scope if isinstance(n, kinds) and n.name == name]
        if not matches:
            return None
        node = matches[-1]  # a later definition shadows an earlier one
        scope = list(node.body)
    return node


def locate_function(file_source: str, qualname: str) -> tuple[int, int]:
    """1-based inclusive (start, end) lines of ``qualname``, decorators included."""
    node = _find_def(ast.parse(file_source), qualname)
    if node is None:
        raise ValueError(f"{qualname} is not defined in this file")
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return start, node.end_lineno


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def blank_body(function_source: str) -> str:
    """``function_source`` (one def, any indentation) with its body replaced by a placeholder;
    decorators, signature and docstring are kept verbatim."""
    dedented = textwrap.dedent(function_source)
    offset = _indent_of(function_source.splitlines()[0]) if function_source.strip() else ""
    node = _single_function(dedented, "function")
    lines = dedented.splitlines(keepends=True)
    body = node.body
    first = body[0]
    has_doc = _is_docstring(first)
    body_indent = " " * first.col_offset if first.lineno != node.lineno else "    "
    if has_doc:
        head = "".join(lines[: first.end_lineno])
    elif first.lineno == node.lineno:  # one-liner: def f(): return x
        line = lines[first.lineno - 1]
        head = line[: first.col_offset].rstrip() + "\n"
        head = "".join(lines[: first.lineno - 1]) + head
    else:
        head = "".join(lines[: first.lineno - 1])
    if not head.endswith("\n"):
        head += "\n"
    blanked = head + f"{body_indent}raise NotImplementedError  # body removed: implement this function\n"
    return textwrap.indent(blanked, offset) if offset else blanked


def _reindent(function_source: str, indent: str) -> str:
    text = textwrap.dedent(function_source).strip("\n") + "\n"
    return "".join(indent + line if line.strip() else line for line in text.splitlines(keepends=True))


def splice(file_source: str, start_line: int, end_line: int, function_source: str) -> str:
    """``file_source`` with lines start..end replaced by ``function_source`` (re-indented)."""
    lines = file_source.splitlines(keepends=True)
    indent = _indent_of(lines[start_line - 1])
    new = _reindent(function_source, indent)
    if end_line == len(lines) and not file_source.endswith("\n"):
        new = new[:-1]
    return "".join(lines[: start_line - 1]) + new + "".join(lines[end_line:])
