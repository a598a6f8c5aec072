"""Plant a bug with a model (plain Python, no Django).

Two modes, after SWE-smith:

* ``modify`` — the model sees one function, its file and the tests that cover it, and returns
  the complete source of that function with a subtle bug, a verifier script and an issue-style
  problem statement.
* ``rewrite`` — the function's body is blanked (signature and docstring kept) everywhere the
  model could see it; the model re-implements it from the surrounding code. The result is kept
  whatever it is; the validation engine later decides whether tests fail. Its verifier runs the
  covering tests and its problem statement is left empty (``problem_statement_from_failure``
  makes one from the failing output once validation has run).

The model never writes diffs: the injector splices the returned function into the file by line
range and builds a ``git apply``-able unified diff itself. Replies are parsed strictly; a
malformed reply or an upstream error costs one attempt from the retry budget, and the next
attempt tells the model what was wrong. ``inject`` never raises for anything the model does.

Reply format (modify)::

    ### BUG
    ```python
    def band_for(self, weight_grams: int) -> Optional[WeightBand]:
        ...
    ```

    ### VERIFIER
    ```python
    import sys
    ...
    ```

    ### PROBLEM
    Issue text, in prose (a short reproduction snippet is welcome).

Reply format (rewrite): one ``### IMPLEMENTATION`` section with the fenced function.
"""
from __future__ import annotations

import ast
import random
import re
import textwrap
from dataclasses import dataclass, field
from typing import Callable

from episodes.engine.validate.validator import pytest_verifier
from episodes.engine.git.workspace import unified_diff

MODES = ("modify", "rewrite")
BUG, VERIFIER, PROBLEM, IMPLEMENTATION = "BUG", "VERIFIER", "PROBLEM", "IMPLEMENTATION"
SECTIONS = {"modify": (BUG, VERIFIER, PROBLEM), "rewrite": (IMPLEMENTATION,)}

MAX_FILE_CHARS = 60_000
MAX_TESTS_CHARS = 40_000
CONTEXT_LINES = 150  # around the function when the file is too large to show whole
MIN_PROBLEM_CHARS = 40

BUG_FLAVOURS = (
    "an off-by-one error at a boundary (an inclusive limit treated as exclusive, or the reverse)",
    "a comparison operator that is subtly wrong for one edge case",
    "an edge case (empty input, zero, None, a single element) that is handled incorrectly",
    "the wrong element being picked (first instead of last, lightest instead of heaviest, ...)",
    "an early return or break in the wrong place",
    "a condition that is inverted or that drops one of its clauses",
    "an arithmetic slip (wrong rounding direction, wrong operand, a missing term)",
    "a loop or iteration that skips or repeats an element",
)

SYSTEM_PROMPT = (
    "You are a senior Python engineer helping to build a benchmark of realistic software bugs. "
    "Each bug you write is later given to developers who must find and fix it from an issue "
    "report alone, so bugs must be subtle, plausible and confined to the one function you are "
    "given. You follow the requested reply format exactly."
)

SYSTEM_PROMPT_REWRITE = (
    "You are a Python engineer. You implement functions from their signature, docstring and the "
    "surrounding code. You follow the requested reply format exactly."
)


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


@dataclass
class InjectionRequest:
    mode: str
    path: str  # repository-relative, forward slashes
    qualname: str  # "function" or "Class.method"
    file_source: str
    function_source: str  # lines start_line..end_line of file_source (decorators included)
    start_line: int  # 1-based, inclusive
    end_line: int  # 1-based, inclusive
    covering_tests: list[str] = field(default_factory=list)  # pytest node ids
    test_sources: dict[str, str] = field(default_factory=dict)  # path -> source
    seed: int = 0

    @classmethod
    def for_function(cls, mode: str, path: str, qualname: str, file_source: str, **kw) -> "InjectionRequest":
        """Build a request by locating ``qualname`` in ``file_source``."""
        start, end = locate_function(file_source, qualname)
        lines = file_source.splitlines(keepends=True)
        return cls(mode, path, qualname, file_source, "".join(lines[start - 1 : end]), start, end, **kw)


@dataclass
class InjectionOutcome:
    ok: bool
    patch: str = ""
    verifier: str = ""
    problem_statement: str = ""
    failures: list[str] = field(default_factory=list)
    calls: int = 0
    cost_usd: float = 0.0
    function_source: str = ""  # the planted function as spliced into the file


# -- locating and reshaping functions ---------------------------------------------------------


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


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


# -- prompts ----------------------------------------------------------------------------------


def _file_context(file_source: str, start_line: int, end_line: int) -> str:
    if len(file_source) <= MAX_FILE_CHARS:
        return file_source
    lines = file_source.splitlines(keepends=True)
    lo, hi = max(0, start_line - 1 - CONTEXT_LINES), min(len(lines), end_line + CONTEXT_LINES)
    head = f"# ... {lo} lines omitted ...\n" if lo else ""
    tail = f"# ... {len(lines) - hi} lines omitted ...\n" if hi < len(lines) else ""
    return head + "".join(lines[lo:hi]) + tail


def _test_functions(source: str, names: set[str]) -> str:
    """Only the imports and the named test functions/classes of a (large) test file."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source[: MAX_TESTS_CHARS // 2]
    lines = source.splitlines(keepends=True)
    keep = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or getattr(node, "name", None) in names:
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            keep.append("".join(lines[start - 1 : node.end_lineno]))
    return "\n".join(keep)


def _tests_context(covering_tests: list[str], test_sources: dict[str, str]) -> str:
    parts: list[str] = []
    budget = MAX_TESTS_CHARS
    for path, source in test_sources.items():
        if budget <= 0:
            break
        if len(source) > budget or len(source) > MAX_TESTS_CHARS // 2:
            wanted = {p.split("[")[0] for t in covering_tests if t.split("::")[0] == path for p in t.split("::")[1:]}
            source = _test_functions(source, wanted)[:budget]
        parts.append(f"--- {path} ---\n```python\n{source.rstrip()}\n```")
        budget -= len(source)
    return "\n\n".join(parts)


MODIFY_FORMAT = """\
Reply with exactly these three sections, in this order, each header on its own line, and nothing else:

### BUG
```python
<the complete new source of `{name}` only: its decorators, signature, docstring and body, with the bug in it>
```

### VERIFIER
```python
<a standalone Python script, run from the repository root, that exits with status 0 only when
`{qualname}` behaves correctly again and with a non-zero status while your bug is present.
It may import the package directly and/or call pytest.main() on the relevant tests.
No network, no randomness, no timing.>
```

### PROBLEM
<an issue as a user of the library would file it: what they did, what they expected and what
happened instead; a short reproduction snippet is welcome. It must not reveal the cause or the
fix, must not quote the changed code, and must not mention tests, test files, test names or
test tools, nor ask anyone to run tests.>
"""

REWRITE_FORMAT = """\
Reply with exactly one section and nothing else:

### IMPLEMENTATION
```python
<the complete source of `{name}`: the same decorators, signature and docstring as given, and your body>
```
"""


def build_prompt(request: InjectionRequest) -> tuple[str, str]:
    """(system, user) prompts for the first attempt."""
    name = request.qualname.split(".")[-1]
    if request.mode == "rewrite":
        blanked_fn = blank_body(request.function_source)
        blanked_file = splice(request.file_source, request.start_line, request.end_line, blanked_fn)
        blank_end = request.start_line + len(blanked_fn.splitlines()) - 1
        user = (
            f"The body of `{request.qualname}` in `{request.path}` has been removed. Implement it from its "
            "signature, its docstring and the way the rest of the code uses it.\n\n"
            f"File `{request.path}`:\n"
            f"```python\n{_file_context(blanked_file, request.start_line, blank_end).rstrip()}\n```\n\n"
            f"The function to implement:\n```python\n{textwrap.dedent(blanked_fn).rstrip()}\n```\n\n"
            + REWRITE_FORMAT.format(name=name)
        )
        return SYSTEM_PROMPT_REWRITE, user
    flavour = random.Random(request.seed).choice(BUG_FLAVOURS)
    tests = _tests_context(request.covering_tests, request.test_sources)
    covering = "\n".join(f"- {t}" for t in request.covering_tests) or "- (none listed)"
    user = (
        f"Introduce one subtle bug into `{request.qualname}` in `{request.path}`.\n\n"
        f"File `{request.path}`:\n"
        f"```python\n{_file_context(request.file_source, request.start_line, request.end_line).rstrip()}\n```\n\n"
        f"The function to change (lines {request.start_line}-{request.end_line}):\n"
        f"```python\n{textwrap.dedent(request.function_source).rstrip()}\n```\n\n"
        f"Tests that exercise it:\n{covering}\n\n"
        + (f"Their source:\n\n{tests}\n\n" if tests else "")
        + "Requirements:\n"
        "- Change only this one function; keep its name and keep it valid Python.\n"
        "- The bug must make at least one of the tests above fail, while most of them keep passing.\n"
        "- Make it look like an honest mistake: no comments or names that point at the bug, no "
        "exceptions raised on purpose, no sleeping, no randomness.\n"
        f"- For variety, prefer {flavour}, if that fits this function.\n\n"
        + MODIFY_FORMAT.format(name=name, qualname=request.qualname)
    )
    return SYSTEM_PROMPT, user


def _retry_message(reason: str, mode: str) -> str:
    headers = ", ".join(f"'### {s}'" for s in SECTIONS[mode])
    return (
        f"Your reply could not be used: {reason}.\n"
        f"Reply again, complete and in the exact format requested (sections {headers}), fixing that problem."
    )


# -- the loop ---------------------------------------------------------------------------------


def _check_request(request: InjectionRequest) -> str:
    if request.mode not in MODES:
        return f"unknown mode {request.mode!r}"
    lines = request.file_source.splitlines(keepends=True)
    if not (1 <= request.start_line <= request.end_line <= len(lines)):
        return f"lines {request.start_line}-{request.end_line} are outside {request.path} ({len(lines)} lines)"
    in_file = "".join(lines[request.start_line - 1 : request.end_line])
    if in_file.strip("\n") != request.function_source.strip("\n"):
        return f"function_source does not match lines {request.start_line}-{request.end_line} of {request.path}"
    try:
        _single_function(textwrap.dedent(in_file), "function")
    except MalformedReply as exc:
        return f"lines {request.start_line}-{request.end_line} are not one function: {exc.reason}"
    return ""


def inject(
    client,
    request: InjectionRequest,
    retries: int = 2,
    on_call: Callable | None = None,
    prompt: Callable[[InjectionRequest], tuple[str, str]] | None = None,
) -> InjectionOutcome:
    """Ask ``client`` (an ``LLMClient``) for a bug, with up to ``1 + retries`` attempts.

    ``on_call(ChatResult)`` is called after every model call (to store it). Never raises for
    upstream errors or unusable replies: they are recorded in ``failures``, one per attempt.
    ``prompt`` replaces ``build_prompt`` for a method that asks differently but answers in one
    of the two reply formats (feature removal answers in the rewrite format).
    """
    outcome = InjectionOutcome(ok=False)
    problem = _check_request(request)
    if problem:
        outcome.failures.append(f"invalid request: {problem}")
        return outcome
    system, prompt = (prompt or build_prompt)(request)
    test_names = _test_names(request.covering_tests, request.test_sources)
    messages: list[dict] = [{"role": "user", "content": prompt}]
    for attempt in range(1, retries + 2):
        result = client.complete(system, messages)
        outcome.calls += 1
        outcome.cost_usd += result.cost_usd or 0.0
        if on_call is not None:
            on_call(result)
        if result.error:
            outcome.failures.append(f"attempt {attempt}: upstream error: {result.error}")
            continue  # same conversation again
        try:
            parsed = parse_reply(
                result.text,
                mode=request.mode,
                function_source=request.function_source,
                qualname=request.qualname,
                test_names=test_names,
            )
            new_file = splice(request.file_source, request.start_line, request.end_line, parsed.function_source)
            try:
                ast.parse(new_file)
            except SyntaxError as exc:
                raise MalformedReply(
                    f"the file does not compile with the new function: {exc.msg} (line {exc.lineno})"
                ) from None
            patch = unified_diff(request.path, request.file_source, new_file)
            if not patch:
                raise MalformedReply("the new function leaves the file unchanged")
        except MalformedReply as exc:
            outcome.failures.append(f"attempt {attempt}: malformed reply: {exc.reason}")
            messages = [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": result.text},
                {"role": "user", "content": _retry_message(exc.reason, request.mode)},
            ]
            continue
        outcome.ok = True
        outcome.patch = patch
        outcome.function_source = parsed.function_source
        if request.mode == "modify":
            outcome.verifier, outcome.problem_statement = parsed.verifier, parsed.problem_statement
        else:
            outcome.verifier = pytest_verifier(request.covering_tests)
        return outcome
    return outcome


# -- fallback problem statements ---------------------------------------------------------------

_NODE_ID = re.compile(r"\S*\.py::\S+")
_TEST_PATH = re.compile(r"(?:[\w./-]*/)?(?:tests?/[\w./-]*|test_\w*\.py|\w+_test\.py)(?::\d+)?:?")
_TEST_IDENT = re.compile(r"\b(?:test_\w+|\w+_test|Test[A-Z]\w*)\b")
_EXCEPTION_LINE = re.compile(r"^[\w.]*(?:Error|Exception)\b:?.*$")


def _clean_line(line: str) -> str:
    line = _NODE_ID.sub("", line)
    line = _TEST_PATH.sub("", line)
    line = _TEST_IDENT.sub("the check", line)
    return line.rstrip()


# pytest's own explanations (introspection, diff hints): tooling, never what a user would see
_PYTEST_CHATTER = re.compile(r"^(\+|Use -v to get|Full diff:|Omitting \d+ identical items|At index \d+ diff:|\?)")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")


def problem_statement_from_failure(test_output: str, qualname: str, path: str = "") -> str:
    """An issue-style statement from a failing run's assertion text, for bugs planted without a
    model. Test names, paths and tooling are stripped; it never asks anyone to run tests, and it
    never names the changed function (``qualname``) or its file: a statement that does localizes
    the bug for free, so the solver learns nothing about finding it. The symptom is all it
    gives: the failing assertion or the exception, as a user would see it."""
    candidates = [ln[1:].strip() for ln in (test_output or "").splitlines() if ln.startswith("E ")]
    if not candidates:  # no pytest assertion lines: fall back to exception lines
        candidates = [ln.strip() for ln in (test_output or "").splitlines() if _EXCEPTION_LINE.match(ln.strip())]
    names = {part for part in qualname.split(".") if len(part) > 2}
    module = path[:-3].replace("/", ".") if path.endswith(".py") else ""  # cartcalc.shipping in a repr
    if path:
        names.add(path.rsplit("/", 1)[-1])
    evidence: list[str] = []
    for text in candidates:
        if not text or re.search(r"py\.?test|unittest|conftest", text, re.I) or _PYTEST_CHATTER.match(text):
            continue
        text = _ADDRESS.sub("0x…", _clean_line(text))
        if any(re.search(rf"\b{re.escape(n)}\b", text) for n in names) or (module and module in text):
            continue  # a line naming the changed code would point at the fix
        if text.strip() and text not in evidence:
            evidence.append(text)
        if len(evidence) >= 12:
            break
    error = next((m.group(1) for m in (re.match(r"([A-Z]\w*(?:Error|Exception))\b", e) for e in evidence)
                  if m and m.group(1) != "AssertionError"), "")
    lines = [f"{error} since the last change" if error else "Wrong results since the last change", ""]
    lines.append("Since the last change, code that relies on the library no longer behaves as documented: "
                 "some inputs that used to work now give a different result or an error.")
    if evidence:
        lines += ["", "What I see:", "", "```", *evidence, "```"]
    lines += ["", "Expected: the behaviour the documentation and the rest of the library describe."]
    return "\n".join(lines) + "\n"
