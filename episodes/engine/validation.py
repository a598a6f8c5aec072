"""Is a planted bug a real, verifiable bug? (plain Python, no Django)

Given an executor (sandbox), a workspace factory and plain descriptions of the repository and
the bug, run the checks and return a verdict. Every sandboxed run is reported through
``on_run`` as it finishes, so the caller can store it and show progress.
"""
from __future__ import annotations

import json
import random
import shlex
import shutil
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import coverage_map, flakiness, junit
from .sandbox.base import ExecResult, Executor, Limits
from .workspace import PatchError, WorkspaceFactory, is_pristine, join_hunks, split_hunks

VERIFIER_PATH = ".bugforge/verifier.py"
JUNIT_PATH = ".bugforge/junit.xml"
LOG_EXCERPT_CHARS = 4000


@dataclass
class RepoSpec:
    mirror: Path
    commit: str
    test_command: str = "python -m pytest"
    environment: str | None = None
    baseline: dict[str, dict] = field(default_factory=dict)  # {test_id: {"status", ...}}


@dataclass
class BugSpec:
    patch: str
    verifier: str


@dataclass
class RunRecord:
    code: str  # clean | buggy | reverse | candidate | hunk
    scope: str  # verifier | suite | tests
    purpose: str
    outcome: str  # passed | failed | error | timeout
    exit_code: int | None
    killed_by: str
    duration_s: float
    seed: int | None
    tests: dict[str, str]
    log_excerpt: str
    backend: str


@dataclass
class Verdict:
    status: str  # valid | invalid | flaky
    reason: str = ""
    kind: str = ""  # short code of an invalid verdict's reason, for yield figures
    patch: str = ""  # the patch kept (decoration hunks dropped)
    fail_to_pass: list[str] = field(default_factory=list)
    pass_to_pass: list[str] = field(default_factory=list)
    dropped_hunks: int = 0
    flakiness: flakiness.Flakiness | None = None


def excerpt(result: ExecResult) -> str:
    text = (result.stdout or "") + ("\n--- stderr ---\n" + result.stderr if result.stderr.strip() else "")
    return text if len(text) <= LOG_EXCERPT_CHARS else "[…]\n" + text[-LOG_EXCERPT_CHARS:]


def verifier_outcome(result: ExecResult) -> str:
    if result.timed_out:
        return "timeout"
    if result.killed_by or result.exit_code is None:
        return "error"
    return "passed" if result.exit_code == 0 else "failed"


class Validator:
    def __init__(
        self,
        executor: Executor,
        workspaces: WorkspaceFactory,
        limits: Limits = Limits(),
        reruns: int = 5,
        on_run: Callable[[RunRecord], None] = lambda run: None,
        on_progress: Callable[[str, int, int], None] = lambda step, done, total: None,
    ):
        self.executor = executor
        self.workspaces = workspaces
        self.limits = limits
        self.reruns = max(1, reruns)
        self.on_run = on_run
        self.on_progress = on_progress

    # --- single runs -------------------------------------------------------------------

    def _record(self, result: ExecResult, code, scope, purpose, outcome, seed=None, tests=None) -> RunRecord:
        record = RunRecord(
            code=code,
            scope=scope,
            purpose=purpose,
            outcome=outcome,
            exit_code=result.exit_code,
            killed_by=result.killed_by or "",
            duration_s=round(result.duration_s, 3),
            seed=seed,
            tests=tests or {},
            log_excerpt=excerpt(result),
            backend=result.backend,
        )
        self.on_run(record)
        return record

    def run_verifier(self, repo: RepoSpec, verifier: str, path: Path, code: str, purpose: str, seed=None) -> RunRecord:
        return self.verifier_result(repo, verifier, path, code, purpose, seed=seed)[0]

    def verifier_result(self, repo: RepoSpec, verifier: str, path: Path, code: str, purpose: str, seed=None,
                        env: dict[str, str] | None = None, clean=lambda result: result) -> tuple[RunRecord, ExecResult]:
        """The verifier run as a record and as the sandbox's raw result (``env`` adds to the
        run's variables; ``clean(result)`` is what the record's log excerpt is made from)."""
        script = path / VERIFIER_PATH
        script.parent.mkdir(exist_ok=True)
        script.write_text(verifier)
        # The script lives in .bugforge/, so put the checkout root on the path the way
        # `python -m pytest` would; the seed reaches the verifier as PYTHONHASHSEED.
        env = {"PYTHONPATH": "."} | ({"PYTHONHASHSEED": str(seed)} if seed is not None else {}) | (env or {})
        result = self.executor.run(
            ["python", VERIFIER_PATH], path, environment=repo.environment, env=env, limits=self.limits
        )
        return self._record(clean(result), code, "verifier", purpose, verifier_outcome(result), seed=seed), result

    def run_suite(
        self, repo: RepoSpec, path: Path, code: str, purpose: str, tests: list[str] | None = None,
        argv: list[str] | None = None,
    ) -> RunRecord:
        """The repository's test command (or just ``tests``) with a JUnit report.
        A test expected but missing from the report counts as failed."""
        (path / JUNIT_PATH).parent.mkdir(exist_ok=True)
        argv = (argv or shlex.split(repo.test_command)) + [f"--junitxml={JUNIT_PATH}", *junit.PYTEST_REPORT_ARGS]
        argv += tests or []
        result = self.executor.run(argv, path, environment=repo.environment, limits=self.limits)
        report = path / JUNIT_PATH
        statuses = {t: r["status"] for t, r in junit.parse_junit(report).items()} if report.exists() else {}
        for test in tests or repo.baseline:
            if "::" in test:  # a test id, not a file or folder selector
                statuses.setdefault(test, "missing")
        failing = [t for t, s in statuses.items() if s in ("failed", "error", "missing")]
        if result.timed_out:
            outcome = "timeout"
        elif result.exit_code == 0 and not failing:
            outcome = "passed"
        elif failing:
            outcome = "failed"
        else:  # a non-zero exit with no failing test is an error, not a pass
            outcome = "error"
        return self._record(result, code, "tests" if tests else "suite", purpose, outcome, tests=statuses)

    # --- whole procedures --------------------------------------------------------------

    def baseline(self, repo: RepoSpec, with_coverage: bool = True) -> tuple[RunRecord, dict | None]:
        """The clean suite once, with per-test status and (when the test command is
        ``python -m pytest``) a coverage map of which tests execute which lines. Refuses an
        environment that holds the repository's own code (``EnvironmentLeak``)."""
        argv = coverage_map.coverage_argv(repo.test_command) if with_coverage else None
        with self.workspaces.checkout(repo.mirror, repo.commit) as path:
            self.check_environment(repo, path)
            if argv is None:
                return self.run_suite(repo, path, "clean", "baseline"), None
            (path / coverage_map.RCFILE).parent.mkdir(exist_ok=True)
            (path / coverage_map.RCFILE).write_text(coverage_map.RC_TEXT)
            record = self.run_suite(repo, path, "clean", "baseline", argv=argv)
            report = self.executor.run(coverage_map.JSON_ARGV, path, environment=repo.environment, limits=self.limits)
            json_path = path / coverage_map.JSON_FILE
            if not report.ok or not json_path.exists():
                return record, None
            return record, coverage_map.build(json_path, [t for t, s in record.tests.items() if s == "passed"])

    def check_environment(self, repo: RepoSpec, checkout: Path) -> None:
        """Raise ``EnvironmentLeak`` when the repository's own packages import from the
        environment itself (run from an empty folder, so the workspace is not on the path):
        an agent could then read the clean code there."""
        names = own_packages(checkout)
        if not names or repo.environment is None:
            return
        empty = Path(tempfile.mkdtemp(dir=self.workspaces.workspaces, prefix="envcheck-"))
        try:
            empty.chmod(0o755)
            result = self.executor.run(["python", "-I", "-c", FIND_SPECS, *names], empty,
                                       environment=repo.environment, limits=self.limits)
        finally:
            shutil.rmtree(empty, ignore_errors=True)
        found = json.loads(result.stdout or "{}") if result.exit_code == 0 else {}
        if found:
            where = ", ".join(f"{name} at {origin}" for name, origin in sorted(found.items()))
            raise EnvironmentLeak(
                f"the test environment contains the repository's own code ({where}): the install command "
                "installed the package itself, so an agent could read the clean code there. Install only its "
                "dependencies (e.g. `pip install -r requirements.txt`); the tests import the package from the workspace."
            )

    def verifier_runs(self, repo: RepoSpec, bug: BugSpec, n: int, seed: int, purpose: str) -> list[RunRecord]:
        """n clean and n buggy verifier runs in an order shuffled by ``seed``, each in a
        fresh workspace (what flakes depends on: order, state left behind)."""
        order = ["clean"] * n + ["buggy"] * n
        rng = random.Random(seed)
        rng.shuffle(order)
        records = []
        for i, code in enumerate(order):
            self.on_progress(f"{purpose}: {code} run", i, len(order))
            patch = bug.patch if code == "buggy" else ""
            with self.workspaces.checkout(repo.mirror, repo.commit, patch=patch) as path:
                records.append(self.run_verifier(repo, bug.verifier, path, code, purpose, seed=rng.randrange(2**31)))
        return records

    def validate(self, repo: RepoSpec, bug: BugSpec, seed: int | None = None, _depth: int = 0) -> Verdict:
        """Run every check; the cheap ones first so most bad candidates stop early.

        A verifier run that goes the wrong way is not trusted alone: that side is rerun
        (reruns − 1 more) and the bug is invalid only if no run went the right way; a mix is
        flakiness, which the verdict reports with its figures.
        """
        seed = random.randrange(2**31) if seed is None else seed
        rng = random.Random(seed)
        total = 3 + 2 * self.reruns
        progress = lambda step, done: self.on_progress(step, done, total)  # noqa: E731
        invalid = lambda kind, reason: Verdict("invalid", reason, kind, patch=bug.patch)  # noqa: E731

        def runs_on(code: str, patch: str = "", reverse: str = "", purpose: str = "validation") -> RunRecord:
            with self.workspaces.checkout(repo.mirror, repo.commit, patch=patch, reverse_patch=reverse) as path:
                return self.run_verifier(repo, bug.verifier, path, code, purpose, seed=rng.randrange(2**31))

        def confirm(first: RunRecord, want: str, again) -> list[RunRecord]:
            """The first run, plus reruns when it went the wrong way."""
            return [first] if first.outcome == want else [first] + [again() for _ in range(self.reruns - 1)]

        # 1. The patch applies and reverses to the very same code, and there the verifier
        #    passes: "passes on clean code" and "the reverse patch restores the pass" in one
        #    run (the tree is byte-identical to clean, checked with git).
        progress("verifier on clean code (patch applied and reversed)", 0)
        try:
            with self.workspaces.checkout(repo.mirror, repo.commit, patch=bug.patch, reverse_patch=bug.patch) as path:
                if not is_pristine(path):
                    return invalid("reverse_does_not_restore", "the reverse patch does not restore the original code")
                first_clean = self.run_verifier(repo, bug.verifier, path, "reverse", "validation", seed=rng.randrange(2**31))
        except PatchError as exc:
            kind = "reverse_does_not_apply" if "in reverse" in str(exc) else "patch_does_not_apply"
            return invalid(kind, str(exc))
        clean = confirm(first_clean, "passed", lambda: runs_on("clean", purpose="flakiness"))
        if not any(r.outcome == "passed" for r in clean):
            return invalid("verifier_fails_clean", f"verifier does not pass on clean code ({_outcomes(clean)})")

        # 2. It fails on buggy code, and the full suite shows which tests the bug breaks.
        progress("verifier and test suite on buggy code", 1)
        with self.workspaces.checkout(repo.mirror, repo.commit, patch=bug.patch) as path:
            first_buggy = self.run_verifier(repo, bug.verifier, path, "buggy", "validation", seed=rng.randrange(2**31))
            suite = self.run_suite(repo, path, "buggy", "validation")
        buggy = confirm(first_buggy, "failed", lambda: runs_on("buggy", bug.patch, purpose="flakiness"))
        if not any(r.outcome == "failed" for r in buggy):
            return invalid("verifier_passes_buggy", f"verifier does not fail on buggy code ({_outcomes(buggy)})")

        # 3. The suite: F2P ≥ 1, P2P ≥ 1, nothing newly passing, no silent errors.
        progress("judging the test suite", 2)
        verdict = self._judge_suite(repo, bug, suite)
        if verdict.status == "invalid":
            return verdict

        # 4. Every hunk is needed: reverting it alone fixes at least one failing test.
        hunks = split_hunks(bug.patch)
        if len(hunks) > 1 and _depth == 0:
            needed = [h for h in hunks if self._hunk_needed(repo, hunks, h, verdict.fail_to_pass)]
            if not needed:
                return invalid("decorative_hunks", "no single hunk is needed on its own")
            if len(needed) < len(hunks):
                reduced = BugSpec(patch=join_hunks(needed), verifier=bug.verifier)
                result = self.validate(repo, reduced, seed=seed, _depth=1)
                result.dropped_hunks = len(hunks) - len(needed)
                return result

        # 5. Flakiness: top both sides up to `reruns` runs, in a shuffled order.
        order = ["clean"] * max(0, self.reruns - len(clean)) + ["buggy"] * max(0, self.reruns - len(buggy))
        rng.shuffle(order)
        for i, code in enumerate(order):
            progress(f"flakiness: {code} run", 3 + i)
            run = runs_on(code, bug.patch if code == "buggy" else "", purpose="flakiness")
            (clean if code == "clean" else buggy).append(run)
        verdict.flakiness = flakiness.measure([r.outcome == "passed" for r in clean], [r.outcome == "failed" for r in buggy])
        if verdict.flakiness.disagrees:
            verdict.status, verdict.reason = "flaky", verdict.flakiness.describe()
        progress("done", total)
        return verdict

    def _judge_suite(self, repo: RepoSpec, bug: BugSpec, suite: RunRecord) -> Verdict:
        invalid = lambda kind, reason: Verdict("invalid", reason, kind, patch=bug.patch)  # noqa: E731
        if suite.outcome == "timeout":
            return invalid("suite_timeout", "test suite times out on buggy code")
        if suite.outcome == "error":
            return invalid("suite_error", f"test suite exits {suite.exit_code} on buggy code with no failing test")
        was_passing = {t for t, r in repo.baseline.items() if r.get("status") == "passed"}
        now_passing = {t for t, s in suite.tests.items() if s == "passed"}
        newly = sorted(now_passing - was_passing - {t for t, s in suite.tests.items() if t not in repo.baseline})
        if newly:
            return invalid("newly_passing", f"{len(newly)} test(s) pass on buggy code but not on clean code: {', '.join(newly[:5])}")
        f2p = sorted(was_passing - now_passing)
        p2p = sorted(was_passing & now_passing)
        if not f2p:
            return invalid("no_fail_to_pass", "no test of the suite fails on buggy code (FAIL_TO_PASS is empty)")
        if not p2p:
            return invalid("no_pass_to_pass", "every test fails on buggy code (PASS_TO_PASS is empty)")
        return Verdict("valid", patch=bug.patch, fail_to_pass=f2p, pass_to_pass=p2p)

    def _hunk_needed(self, repo: RepoSpec, hunks: list[str], hunk: str, f2p: list[str]) -> bool:
        others = [h for h in hunks if h is not hunk]
        with self.workspaces.checkout(repo.mirror, repo.commit, patch=join_hunks(others)) as path:
            record = self.run_suite(repo, path, "hunk", "hunk check", tests=f2p)
        return any(record.tests.get(t) == "passed" for t in f2p)


class EnvironmentLeak(RuntimeError):
    """The environment holds the repository's own code (a copy of the clean source)."""


# Run isolated (-I) from an empty folder: a name found is found in the environment itself.
FIND_SPECS = (
    "import importlib.util, json, os, sys\n"
    "found = {}\n"
    "for name in sys.argv[1:]:\n"
    "    try:\n"
    "        spec = importlib.util.find_spec(name)\n"
    "    except Exception:\n"
    "        spec = None\n"
    "    if spec is not None and spec.origin and os.path.exists(spec.origin):\n"
    "        found[name] = spec.origin\n"
    "print(json.dumps(found))\n"
)
NOT_PACKAGES = {"setup", "conftest", "noxfile", "tasks", "manage", "docs", "tests", "test", "testing", "examples"}


def own_packages(checkout: Path) -> list[str]:
    """Top-level importable names the repository provides (packages and modules at its root or
    under ``src/``), test and tooling names left out."""
    names = set()
    for root in (checkout, checkout / "src"):
        if not root.is_dir():
            continue
        for entry in root.iterdir():
            if entry.name.startswith((".", "_")):
                continue
            if entry.is_dir() and (entry / "__init__.py").is_file():
                names.add(entry.name)
            elif entry.suffix == ".py" and not entry.name.startswith("test_"):
                names.add(entry.stem)
    return sorted(n for n in names - NOT_PACKAGES if n.isidentifier())


def pytest_verifier(test_ids: list[str]) -> str:
    """A standalone verifier that exits 0 only when all ``test_ids`` pass."""
    return textwrap.dedent(
        f"""\
        # BugForge verifier: exits 0 only when every listed test passes.
        import sys

        import pytest

        TESTS = {test_ids!r}
        sys.exit(0 if pytest.main(["-q", "-p", "no:cacheprovider", *TESTS]) == 0 else 1)
        """
    )


def _outcomes(runs: list[RunRecord]) -> str:
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    return ", ".join(f"{n}/{len(runs)} {outcome}" for outcome, n in counts.items())
