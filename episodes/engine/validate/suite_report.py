"""Per-test results of a suite run, from BugForge's own pytest plugin (``bugforge_pytest``), never
from scraping the log: the plugin writes {nodeid: {"status", "duration"}} with pytest's own node
ids, so a test id read here is exactly what a later run can be given as an argument."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

PLUGIN_DIR = ".bugforge"
PLUGIN_MODULE = "bugforge_pytest"
RESULTS_FILE = f"{PLUGIN_DIR}/results.json"
COVERAGE_MAP_FILE = f"{PLUGIN_DIR}/coverage-map.json"
PLUGIN_SOURCE = Path(__file__).with_name(f"{PLUGIN_MODULE}.py")

PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"

# Flags every suite run gets: nothing cached between runs, quiet logs.
PYTEST_ARGS = ["-p", "no:cacheprovider", "-q"]


def install(path: Path, test_timeout_s: float = 0, coverage: bool = False) -> dict[str, str]:
    """Put the plugin into the checkout at ``path``; returns the run's environment variables.
    (Relative paths: the run's working directory is the checkout on every backend.)"""
    (path / PLUGIN_DIR).mkdir(exist_ok=True)
    shutil.copyfile(PLUGIN_SOURCE, path / PLUGIN_DIR / PLUGIN_SOURCE.name)
    for stale in (RESULTS_FILE, COVERAGE_MAP_FILE):
        (path / stale).unlink(missing_ok=True)
    env = {"PYTEST_PLUGINS": PLUGIN_MODULE, "PYTHONPATH": PLUGIN_DIR, "BUGFORGE_RESULTS": RESULTS_FILE}
    if test_timeout_s:
        env["BUGFORGE_TEST_TIMEOUT"] = f"{test_timeout_s:g}"
    if coverage:
        env["BUGFORGE_COVERAGE_MAP"] = COVERAGE_MAP_FILE
    return env


def read_results(path: Path) -> dict[str, dict]:
    """{nodeid: {"status", "duration"}} of the run in ``path``; {} when the session never ended
    (killed, or the command did not run pytest)."""
    try:
        return json.loads((path / RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def read_coverage_map(path: Path) -> dict | None:
    try:
        return json.loads((path / COVERAGE_MAP_FILE).read_text())
    except (OSError, ValueError):
        return None
