"""Parsing a model's reply to an injection prompt strictly, and the leak checks on its problem
statement (plain Python, no Django). A reply that cannot be used raises ``MalformedReply``,
whose reason is sent back to the model."""
from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

MODES = ("modify", "rewrite")
BUG, VERIFIER, PROBLEM, IMPLEMENTATION = "BUG", "VERIFIER", "PROBLEM", "IMPLEMENTATION"
SECTIONS = {"modify": (BUG, VERIFIER, PROBLEM), "rewrite": (IMPLEMENTATION,)}
MIN_PROBLEM_CHARS = 40


class MalformedReply(ValueError):
    """The model's reply cannot be used; ``reason`` says why (and is sent back to the model)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class ParsedReply:
    function_source: str  # the new function, dedented
    verifier: str = ""
    problem_statement: str = ""



def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)



def _single_function(source: str, what: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise MalformedReply(f"the {what} section does not compile: {exc.msg} (line {exc.lineno})") from None
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if len(tree.body) != 1 or len(defs) != 1:
        raise MalformedReply(
            f"the {what} section must contain exactly one function definition and nothing else "
            f"(found {len(tree.body)} top-level statements)"
        )
    return defs[0]


def _strip_docstrings(node: ast.AST) -> ast.AST:
    for n in ast.walk(node):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = n.body
            if body and _is_docstring(body[0]):
                n.body = body[1:] or [ast.Pass()]
    return node


def normalized(function_source: str) -> str:
    """A formatting-, comment- and docstring-blind fingerprint of a function."""
    tree = ast.parse(textwrap.dedent(function_source))
    return ast.dump(_strip_docstrings(tree), annotate_fields=False, include_attributes=False)


# -- parsing replies --------------------------------------------------------------------------

# Only the known section names are headers; any other markdown heading is section content.
_HEADER = re.compile(r"^\s{0,3}#{2,4}\s*(BUG|VERIFIER|PROBLEM|IMPLEMENTATION)\s*:?\s*$", re.I)
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")

_TEST_LEAKS = (
    (re.compile(r"\bpy\.?test\b", re.I), "mentions pytest"),
    (re.compile(r"\bunittest\b", re.I), "mentions unittest"),
    (re.compile(r"\b(?:tox|nox|conftest)\b", re.I), "mentions the test tooling"),
    (
        re.compile(r"\brun(?:ning)?\s+(?:the\s+|all\s+|your\s+)?(?:unit\s+)?tests?\b", re.I),
        "tells the reader to run tests",
    ),
    (re.compile(r"\btest[\s-]?suite\b", re.I), "mentions the test suite"),
    (re.compile(r"\b(?:failing|failed|broken)\s+tests?\b", re.I), "mentions failing tests"),
    (re.compile(r"\bunit\s+tests?\b", re.I), "mentions unit tests"),
    (re.compile(r"\btests?/[\w./-]*"), "names a test path"),
    (re.compile(r"[\w/.-]*\btest_\w*\.py\b|\b\w+_test\.py\b"), "names a test file"),
    (re.compile(r"\.py::\w+"), "names a test node id"),
    (re.compile(r"\btest_\w+"), "names a test function"),
    (re.compile(r"\b\w+_test\b"), "names a test function"),
    (re.compile(r"\bTest[A-Z]\w+"), "names a test class"),
)


def _sections(text: str) -> dict[str, list[str]]:
    """Header name -> list of bodies (one per occurrence), headers inside code fences ignored."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    fence: str | None = None
    for line in text.splitlines():
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
        elif fence is not None and line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            fence = None
        elif fence is None:
            h = _HEADER.match(line)
            if h:
                current = []
                found.setdefault(h.group(1).upper(), []).append(current)
                continue
        if current is not None:
            current.append(line)
    return {name: ["\n".join(body) for body in bodies] for name, bodies in found.items()}


def _code_block(section: str, name: str) -> str:
    blocks: list[str] = []
    fence: str | None = None
    current: list[str] = []
    for line in section.splitlines():
        if fence is None:
            m = _FENCE.match(line)
            if m:
                fence, current = m.group(1)[0] * len(m.group(1)), []
        elif line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            blocks.append("\n".join(current))
            fence = None
        else:
            current.append(line)
    if fence is not None:
        raise MalformedReply(f"the {name} section has an unclosed code fence")
    if not blocks:
        raise MalformedReply(f"the {name} section has no fenced code block")
    if len(blocks) > 1:
        raise MalformedReply(f"the {name} section must hold exactly one code block (found {len(blocks)})")
    code = textwrap.dedent(blocks[0]).strip("\n")
    if not code.strip():
        raise MalformedReply(f"the {name} section's code block is empty")
    return code + "\n"


def _test_names(covering_tests: list[str], test_sources: dict[str, str]) -> set[str]:
    names: set[str] = set()
    for node_id in covering_tests:
        parts = node_id.split("::")
        names.add(parts[0].rsplit("/", 1)[-1])
        for part in parts[1:]:
            names.add(part.split("[")[0])
    for path in test_sources:
        names.add(path.rsplit("/", 1)[-1])
    return {n for n in names if len(n) >= 4}


def check_problem_statement(problem: str, test_names=(), revealing_lines=()) -> None:
    """Raise ``MalformedReply`` if the statement names tests, talks about running them or
    quotes a changed line of code."""
    if len(problem.strip()) < MIN_PROBLEM_CHARS:
        raise MalformedReply(f"the PROBLEM section is too short (at least {MIN_PROBLEM_CHARS} characters of prose)")
    for pattern, why in _TEST_LEAKS:
        m = pattern.search(problem)
        if m:
            raise MalformedReply(
                f"the PROBLEM section {why} ({m.group(0)!r}); describe the symptom as a user would, "
                "without any reference to tests"
            )
    lowered = problem.lower()
    for name in test_names:
        if name.lower() in lowered:
            raise MalformedReply(f"the PROBLEM section names a test ({name!r})")
    for line in revealing_lines:
        if line in problem:
            raise MalformedReply(
                f"the PROBLEM section quotes the changed code ({line!r}); it must not reveal the cause or the fix"
            )
    if re.search(r"^```\s*diff\b", problem, re.M):
        raise MalformedReply("the PROBLEM section contains a diff; it must not reveal the fix")


def parse_reply(
    text: str,
    *,
    mode: str = "modify",
    function_source: str | None = None,
    qualname: str | None = None,
    test_names=(),
) -> ParsedReply:
    """Parse a reply strictly. With ``function_source``/``qualname`` it also rejects a function
    with another name, a no-op change and (rewrite) a changed signature."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    sections = _sections(text or "")
    wanted = SECTIONS[mode]
    for name in wanted:
        count = len(sections.get(name, []))
        if count == 0:
            raise MalformedReply(f"the reply has no '### {name}' section")
        if count > 1:
            raise MalformedReply(f"the reply has {count} '### {name}' sections; exactly one is allowed")
    extra = sorted(set(sections) & {BUG, VERIFIER, PROBLEM, IMPLEMENTATION} - set(wanted))
    if extra:
        raise MalformedReply(f"unexpected section(s): {', '.join('### ' + e for e in extra)}")

    code_name = wanted[0]
    new_fn = _code_block(sections[code_name][0], code_name)
    node = _single_function(new_fn, code_name)
    if qualname is not None and node.name != qualname.split(".")[-1]:
        raise MalformedReply(
            f"the {code_name} section defines {node.name!r} but must redefine {qualname.split('.')[-1]!r}"
        )
    if function_source is not None:
        original = _single_function(textwrap.dedent(function_source), "original")
        if normalized(new_fn) == normalized(function_source):
            raise MalformedReply(
                f"the {code_name} section is the same as the original function (ignoring formatting, comments "
                "and docstrings); the behaviour must actually change"
            )
        if mode == "rewrite" and ast.dump(node.args) != ast.dump(original.args):
            raise MalformedReply("the IMPLEMENTATION changes the function's signature; keep it exactly as given")

    if mode == "rewrite":
        return ParsedReply(new_fn)

    verifier = _code_block(sections[VERIFIER][0], VERIFIER)
    try:
        compile(verifier, "verifier.py", "exec")
    except SyntaxError as exc:
        raise MalformedReply(f"the VERIFIER section does not compile: {exc.msg} (line {exc.lineno})") from None

    problem = sections[PROBLEM][0].strip()
    if problem.startswith(("```", "~~~")) and problem.endswith(("```", "~~~")):
        problem = "\n".join(problem.splitlines()[1:-1]).strip()
    revealing: list[str] = []
    if function_source is not None:
        old = {ln.strip() for ln in textwrap.dedent(function_source).splitlines()}
        new = {ln.strip() for ln in new_fn.splitlines()}
        revealing = [ln for ln in (old ^ new) if len(ln) >= 12 and not ln.startswith(("#", '"""', "'''"))]
    check_problem_statement(problem, test_names, revealing)
    return ParsedReply(new_fn, verifier, problem + "\n")
