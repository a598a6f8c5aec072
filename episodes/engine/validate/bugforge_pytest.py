"""BugForge's pytest plugin: copied into a workspace's ``.bugforge/`` and loaded by every suite
run the validator makes (``PYTEST_PLUGINS=bugforge_pytest``, see ``suite_report.plugin_env``), so
it works for any command that ends up in pytest, whatever the repository's own options are.

It runs inside the sandbox with the repository's environment; it must import nothing but the
standard library, pytest and (only when a coverage map is asked for) coverage.py.

- **Results by node id** (``BUGFORGE_RESULTS``): {nodeid: {"status", "duration"}} written at the
  end of the session; the ids are pytest's own, the same ones a later run is given as arguments.
- **Per-test timeout** (``BUGFORGE_TEST_TIMEOUT`` seconds): a test that hangs fails alone
  (SIGALRM, like pytest-timeout's signal method) instead of costing the whole run its limit.
- **Coverage map** (``BUGFORGE_COVERAGE_MAP``): coverage.py measures the session and each test
  is its own context, named by its node id (so an inherited test method maps to the class that
  ran it, not to the one that defines it). The map is aggregated here, in the run, into the
  compact form of ``coverage_map`` — no per-context JSON report, which is huge on large suites.
"""
import json
import os
import re
import signal
import time

import pytest

RESULTS = os.environ.get("BUGFORGE_RESULTS", "")
COVERAGE_MAP = os.environ.get("BUGFORGE_COVERAGE_MAP", "")
TEST_TIMEOUT = float(os.environ.get("BUGFORGE_TEST_TIMEOUT") or 0)
ROOT = os.getcwd()
# the tests themselves are not mutation targets
TEST_FILE = re.compile(r"(^|.*/)(tests?/.*|test_[^/]*\.py|[^/]*_test\.py|conftest\.py)$")

_results = {}
_cov = None
if COVERAGE_MAP:  # start as early as possible: before conftest files and test modules import
    import coverage

    _cov = coverage.Coverage(data_file=None, config_file=False, omit=[os.path.join(ROOT, ".bugforge", "*")])
    _cov.start()


class TestTimeout(Exception):
    """Raised in a test that ran past BUGFORGE_TEST_TIMEOUT."""


def _on_alarm(signum, frame):
    raise TestTimeout(f"test timed out after {TEST_TIMEOUT:g} s (BUGFORGE_TEST_TIMEOUT)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if _cov is not None:
        _cov.switch_context(item.nodeid)
    timed = TEST_TIMEOUT > 0 and hasattr(signal, "setitimer")
    if timed:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
    try:
        yield
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        if _cov is not None:
            _cov.switch_context("")


def pytest_runtest_logreport(report):
    """A test's status over its phases: error in setup/teardown, else the call's outcome."""
    entry = _results.setdefault(report.nodeid, {"status": "passed", "duration": 0.0})
    entry["duration"] = round(entry["duration"] + getattr(report, "duration", 0.0), 6)
    if report.failed:
        entry["status"] = "failed" if report.when == "call" else "error"
    elif report.skipped and entry["status"] == "passed":
        # xfail counts as skipped too: it is not a passing test to rely on
        entry["status"] = "skipped"


def pytest_collectreport(report):
    if report.failed:  # a module that does not import: its tests never run
        _results[report.nodeid or "<collection>"] = {"status": "error", "duration": 0.0}


def _write(path, data):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, separators=(",", ":"))
    os.replace(tmp, path)


def _coverage_map():
    """{"tests": [passing node ids], "sets": [[test index, ...]], "lines": {path: {line: set}}}.
    Lines run by the same tests share one set: a function's lines mostly do, so the map stays
    a small multiple of the code's size however many tests there are."""
    _cov.stop()
    data = _cov.get_data()
    tests = sorted(t for t, r in _results.items() if r["status"] == "passed")
    index = {t: i for i, t in enumerate(tests)}
    sets, set_ids, lines = [], {}, {}
    for filename in sorted(data.measured_files()):
        path = os.path.relpath(filename, ROOT)
        if path.startswith("..") or TEST_FILE.match(path.replace(os.sep, "/")):
            continue
        for line, contexts in sorted(data.contexts_by_lineno(filename).items()):
            covering = tuple(sorted({index[c] for c in contexts if c in index}))
            if not covering:
                continue  # only run at import time, or only by failing tests
            if covering not in set_ids:
                set_ids[covering] = len(sets)
                sets.append(list(covering))
            lines.setdefault(path.replace(os.sep, "/"), {})[str(line)] = set_ids[covering]
    return {"tests": tests, "sets": sets, "lines": lines}


def pytest_sessionfinish(session, exitstatus):
    started = time.monotonic()
    if RESULTS:
        _write(RESULTS, _results)
    if _cov is not None:
        cmap = _coverage_map()
        cmap["seconds"] = round(time.monotonic() - started, 3)
        _write(COVERAGE_MAP, cmap)
