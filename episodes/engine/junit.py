"""Per-test results from pytest's JUnit XML (never from scraping the log)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"

# Flags every suite run gets so the report has file paths (xunit1) and nothing is cached.
PYTEST_REPORT_ARGS = ["-p", "no:cacheprovider", "-o", "junit_family=xunit1", "-q"]


def parse_junit(path: Path) -> dict[str, dict]:
    """{nodeid: {"status", "duration"}}; node ids look like pytest's (file.py::Class::test)."""
    root = ET.parse(path).getroot()
    results: dict[str, dict] = {}
    for case in root.iter("testcase"):
        results[_node_id(case)] = {"status": _status(case), "duration": float(case.get("time") or 0)}
    return results


def _node_id(case: ET.Element) -> str:
    name, classname, file = case.get("name", ""), case.get("classname", ""), case.get("file")
    if not file:
        return f"{classname.replace('.', '/')}.py::{name}" if classname else name
    module = file[:-3].replace("/", ".") if file.endswith(".py") else file
    parts = [file]
    if classname.startswith(module + "."):
        parts.extend(classname[len(module) + 1 :].split("."))
    parts.append(name)
    return "::".join(parts)


def _status(case: ET.Element) -> str:
    tags = {child.tag for child in case}
    if "error" in tags:
        return ERROR
    if "failure" in tags:
        return FAILED
    if "skipped" in tags:
        return SKIPPED
    return PASSED
