"""Plant a bug with a model (plain Python, no Django).

Two modes, after SWE-smith:

* ``modify`` — the model sees one function, its file and the tests that cover it, and returns
  the complete source of that function with a subtle bug, a verifier script and an issue-style
  problem statement.
* ``rewrite`` — the function's body is blanked (signature and docstring kept) everywhere the
  model could see it; the model re-implements it from the surrounding code. The result is kept
  whatever it is; the validation engine later decides whether tests fail. Its verifier runs the
  covering tests and its problem statement is left empty (``issue_text.problem_statement_from_failure``
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
import textwrap
from dataclasses import dataclass, field
from typing import Callable

from episodes.engine import prompts
from episodes.engine.git.workspace import unified_diff
from episodes.engine.inject.reply import MODES, SECTIONS, MalformedReply, _single_function, _test_names, parse_reply
from episodes.engine.inject.splice import blank_body, locate_function, splice
from episodes.engine.validate.validator import pytest_verifier


MAX_FILE_CHARS = 60_000
MAX_TESTS_CHARS = 40_000
CONTEXT_LINES = 150  # around the function when the file is too large to show whole

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
            + prompts.render("inject_rewrite_format", name=name)
        )
        return prompts.render("inject_rewrite_system"), user
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
        + prompts.render("inject_modify_format", name=name, qualname=request.qualname)
    )
    return prompts.render("inject_system"), user


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
