"""Which tests cover which lines, from one run of the clean suite under coverage.py.

The baseline runs the suite with BugForge's pytest plugin (``bugforge_pytest``), which makes each
test its own coverage context and aggregates the map in the run. The map answers "which passing
tests execute this function / this patch?" — for choosing mutation targets, deriving a
procedural bug's verifier, and running only the tests that matter for a candidate.

Stored form: {"tests": [node ids], "sets": [[test index, ...]], "lines": {path: {line: set index}}}
(maps of the earlier form, {path: {line: [test index, ...]}} without "sets", still read).
"""
from __future__ import annotations

from episodes.engine.git import patches
COVERAGE_PACKAGE = "coverage==7.17.3"


def _covering(coverage: dict, entry) -> list[int]:
    return coverage["sets"][entry] if "sets" in coverage else entry


def tests_covering(coverage: dict, path: str, start: int, end: int) -> list[str]:
    """Node ids of the tests that execute any line of ``path`` in [start, end]."""
    file_lines = coverage.get("lines", {}).get(path, {})
    indexes = {i for line, entry in file_lines.items() if start <= int(line) <= end for i in _covering(coverage, entry)}
    return [coverage["tests"][i] for i in sorted(indexes)]


def tests_for_patch(coverage: dict, patch: str) -> list[str] | None:
    """The tests whose outcome the patch can change: those executing any line of the old code
    around each hunk (its context lines included). None when that cannot be told from the map —
    a new file or one the map does not cover, or a changed line no test executes (a line run
    only at import time, like a constant or a signature, changes what every importing test
    sees): then the whole suite has to run."""
    tests: set[str] = set()
    for section in patches.parse(patch):
        path = section.source
        if section.parsed.is_added_file or not path or path not in coverage.get("lines", {}):
            return None
        for hunk in section.parsed:
            start, length = hunk.source_start, hunk.source_length
            around = tests_covering(coverage, path, start, start + max(length, 1) - 1)
            if not around:
                return None
            tests.update(around)
            for line in hunk:
                code = line.value.strip()
                if line.is_removed and code and not code.startswith("#") and \
                        not tests_covering(coverage, path, line.source_line_no, line.source_line_no):
                    return None
    return sorted(tests) if tests else None


def summary(coverage: dict) -> dict:
    """What the page shows: tests mapped, files and lines covered."""
    lines = coverage.get("lines", {})
    return {
        "tests": len(coverage.get("tests", [])),
        "files": len(lines),
        "lines": sum(len(v) for v in lines.values()),
        "seconds": coverage.get("seconds"),
    }
