"""Which tests cover which lines, from one coverage.py run of the clean suite.

The baseline runs the suite under coverage with per-test contexts; the map then answers
"which passing tests execute this function?" — for choosing mutation targets, deriving a
procedural bug's verifier, and running only the tests that matter.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

COVERAGE_PACKAGE = "coverage==7.17.3"
RCFILE = ".bugforge/coveragerc"
DATA_FILE = ".bugforge/coverage.data"
JSON_FILE = ".bugforge/coverage.json"
RC_TEXT = "[run]\ndynamic_context = test_function\ndata_file = .bugforge/coverage.data\nomit = .bugforge/*\n"


def coverage_argv(test_command: str) -> list[str] | None:
    """``python -m pytest ...`` run under coverage; None for commands we cannot wrap."""
    argv = shlex.split(test_command)
    if argv[:3] != ["python", "-m", "pytest"]:
        return None
    return ["python", "-m", "coverage", "run", f"--rcfile={RCFILE}", "-m", "pytest", *argv[3:]]


JSON_ARGV = ["python", "-m", "coverage", "json", f"--rcfile={RCFILE}", "--show-contexts", "-o", JSON_FILE, "-q"]


def _context_keys(node_id: str) -> list[str]:
    """tests/test_a.py::TestX::test_y[1] → coverage's context names for it. The module part
    depends on how pytest imported the file (``tests.test_a`` in a package, ``test_a`` in
    rootdir-relative "prepend" mode), so every dotted suffix of the path is a key."""
    parts = node_id.split("::")
    modules = (parts[0][:-3] if parts[0].endswith(".py") else parts[0]).split("/")
    name = ".".join(parts[1:]).split("[", 1)[0]
    return [".".join([*modules[i:], name]) for i in range(len(modules))]


def build(coverage_json: Path, node_ids: list[str]) -> dict:
    """The stored map: {"tests": [node ids], "lines": {path: {line: [test index, ...]}}}."""
    by_context: dict[str, list[int]] = {}
    tests = sorted(node_ids)
    for index, node_id in enumerate(tests):
        for key in _context_keys(node_id):
            by_context.setdefault(key, []).append(index)
    data = json.loads(coverage_json.read_text())
    lines: dict[str, dict[str, list[int]]] = {}
    for path, info in data.get("files", {}).items():
        if re.match(r"(tests?/|.*/tests?/|.*test_[^/]*\.py$|conftest\.py$)", path):
            continue  # the tests themselves are not mutation targets
        for line, contexts in (info.get("contexts") or {}).items():
            covering = sorted({i for ctx in contexts for i in by_context.get(ctx.split("|")[0], ())})
            if covering:
                lines.setdefault(path, {})[line] = covering
    return {"tests": tests, "lines": lines}


def tests_covering(coverage: dict, path: str, start: int, end: int) -> list[str]:
    """Node ids of the tests that execute any line of ``path`` in [start, end]."""
    file_lines = coverage.get("lines", {}).get(path, {})
    indexes = {i for line, covering in file_lines.items() if start <= int(line) <= end for i in covering}
    return [coverage["tests"][i] for i in sorted(indexes)]
