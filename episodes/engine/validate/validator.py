"""Is a planted bug a real, verifiable bug? (plain Python, no Django)

Given an executor (sandbox), a workspace factory and plain descriptions of the repository and
the bug, run the checks and return a verdict. Every sandboxed run is reported through
``on_run`` as it finishes, so the caller can store it and show progress.
"""
from __future__ import annotations

import json
import random
import re
import shlex
import shutil
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from episodes.engine.validate import coverage_map

from episodes.engine.validate import flakiness

from episodes.engine.validate import suite_report
from episodes.engine.validate.flakiness import StopRule
from episodes.engine.validate.run_pool import RunPool
from episodes.engine.sandbox.base import KILLED_TIMEOUT, EnvironmentSpec, ExecResult, Executor, Limits
from episodes.engine.git.workspace import PatchError, WorkspaceFactory, is_pristine, join_hunks, split_hunks

VERIFIER_PATH = ".bugforge/verifier.py"
LOG_EXCERPT_CHARS = 4000


@dataclass
class RepoSpec:
    mirror: Path
    commit: str
    test_command: str = "python -m pytest"
    environment: str | None = None
    baseline: dict[str, dict] = field(default_factory=dict)  # {test_id: {"status", ...}}
    coverage: dict = field(default_factory=dict)  # coverage_map of the baseline ({} when none)


def prepare_repo(executor: Executor, workspaces: WorkspaceFactory, source: str, commit: str, environment: dict,
                 test_command: str = "", baseline: dict | None = None, coverage: dict | None = None) -> RepoSpec:
    """Fetch the mirror and build the test environment (both cached), then describe the
    repository. Episodes (``episodes.sandboxes.repo_spec``) and training (``grpo_env``) both
    build their specs here, from the same plain ``environment`` data (see
    ``EnvironmentSpec.for_repository``), so they share one environment build."""
    mirror = workspaces.ensure_mirror(source, commit)
    with workspaces.checkout(mirror, commit) as source_dir:
        built = executor.ensure_environment(EnvironmentSpec.for_repository(environment, source_dir), source_dir)
    return RepoSpec(mirror=mirror, commit=commit, test_command=test_command or "python -m pytest", environment=built,
                    baseline=baseline or {}, coverage=coverage or {})


@dataclass
class BugSpec:
    patch: str
    verifier: str


@dataclass
class RunRecord:
    code: str  # clean | buggy | reverse | candidate | hunk
    scope: str  # verifier | suite | tests
    purpose: str
    outcome: str  # passed | failed | no_tests | error | timeout
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
    # which tests the buggy suite run ran: "covering" (the tests executing the patched code; the
    # others pass by construction and count as PASS_TO_PASS) or "full" (the whole suite)
    suite_scope: str = ""
    suite_tests_run: int = 0
    original_patch: str = ""  # the patch as planted, when hunks were dropped
    dropped: list[str] = field(default_factory=list)  # the dropped hunks, each a patch
    flakiness: flakiness.Flakiness | None = None

    @property
    def dropped_hunks(self) -> int:
        return len(self.dropped)


def excerpt(result: ExecResult) -> str:
    text = (result.stdout or "") + ("\n--- stderr ---\n" + result.stderr if result.stderr.strip() else "")
    return text if len(text) <= LOG_EXCERPT_CHARS else "[…]\n" + text[-LOG_EXCERPT_CHARS:]


# pytest's own words when a session collected nothing (its exit status 5 says the same)
NO_TESTS_RAN = re.compile(r"\bno tests ran\b")


def verifier_outcome(result: ExecResult) -> str:
    """passed | failed | no_tests | timeout | error (another limit hit: see ``killed_by``)."""
    if result.timed_out and result.killed_by in (None, KILLED_TIMEOUT):
        return "timeout"
    if result.killed_by or result.exit_code is None:
        return "error"
    if result.exit_code == 0:
        return "passed"
    if result.exit_code == 5 or NO_TESTS_RAN.search((result.stdout or "")[-4000:]):
        return "no_tests"
    return "failed"


def limit_hit(record: RunRecord) -> str:
    """The sandbox limit that ended a run ("" when none did)."""
    if record.outcome == "timeout":
        return KILLED_TIMEOUT
    return record.killed_by if record.outcome == "error" else ""


class Validator:
    """``flake`` decides how many verifier runs a bug gets (sequential reruns until the flake
    rate's bound is below its target, or a disagreement); ``workers`` runs of one bug go in
    parallel; a first run that goes the wrong way is confirmed by ``confirm_runs`` more (one
    only when it hit a limit or ran no test: that is deterministic, not a flake).
    ``test_timeout_s`` fails a single hanging test of a suite run (0: none); ``suite_scope``
    "covering" runs only the tests that execute a candidate's patched lines where the coverage
    map can tell, "full" always the whole suite."""

    def __init__(
        self,
        executor: Executor,
        workspaces: WorkspaceFactory,
        limits: Limits = Limits(),
        flake: StopRule = StopRule(),
        workers: int = 1,
        confirm_runs: int = 2,
        test_timeout_s: float = 0,
        suite_scope: str = "covering",
        on_run: Callable[[RunRecord], None] = lambda run: None,
        on_progress: Callable[[str, int, int], None] = lambda step, done, total: None,
    ):
        self.executor = executor
        self.workspaces = workspaces
        self.limits = limits
        self.flake = flake
        self.workers = max(1, workers)
        self.confirm_runs = max(1, confirm_runs)
        self.test_timeout_s = test_timeout_s
        self.suite_scope = suite_scope
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

    def exec_verifier(self, repo: RepoSpec, verifier: str, path: Path, seed=None,
                      env: dict[str, str] | None = None) -> ExecResult:
        """The verifier run in ``path`` (``env`` adds to the run's variables), unrecorded."""
        script = path / VERIFIER_PATH
        script.parent.mkdir(exist_ok=True)
        script.write_text(verifier)
        # The script lives in .bugforge/, so put the checkout root on the path the way
        # `python -m pytest` would; the seed reaches the verifier as PYTHONHASHSEED.
        env = {"PYTHONPATH": "."} | ({"PYTHONHASHSEED": str(seed)} if seed is not None else {}) | (env or {})
        return self.executor.run(["python", VERIFIER_PATH], path, environment=repo.environment, env=env,
                                 limits=self.limits)

    def verifier_record(self, result: ExecResult, code: str, purpose: str, seed=None) -> RunRecord:
        return self._record(result, code, "verifier", purpose, verifier_outcome(result), seed=seed)

    def run_verifier(self, repo: RepoSpec, verifier: str, path: Path, code: str, purpose: str, seed=None) -> RunRecord:
        return self.verifier_result(repo, verifier, path, code, purpose, seed=seed)[0]

    def verifier_result(self, repo: RepoSpec, verifier: str, path: Path, code: str, purpose: str, seed=None,
                        env: dict[str, str] | None = None, clean=lambda result: result) -> tuple[RunRecord, ExecResult]:
        """The verifier run as a record and as the sandbox's raw result (``clean(result)`` is
        what the record's log excerpt is made from)."""
        result = self.exec_verifier(repo, verifier, path, seed=seed, env=env)
        return self._record(clean(result), code, "verifier", purpose, verifier_outcome(result), seed=seed), result

    def run_suite(
        self, repo: RepoSpec, path: Path, code: str, purpose: str, tests: list[str] | None = None,
        coverage: bool = False,
    ) -> RunRecord:
        """The repository's test command (or just ``tests``), per-test results from BugForge's
        pytest plugin (and, with ``coverage``, the coverage map in ``path``). A test expected
        but missing from the results counts as failed."""
        env = suite_report.install(path, self.test_timeout_s, coverage=coverage)
        argv = shlex.split(repo.test_command) + suite_report.PYTEST_ARGS + (tests or [])
        result = self.executor.run(argv, path, environment=repo.environment, env=env, limits=self.limits)
        statuses = {t: r["status"] for t, r in suite_report.read_results(path).items()}
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
        """The clean suite once, with per-test status and a coverage map of which tests execute
        which lines (None when the run made none). Refuses an environment that holds the
        repository's own code (``EnvironmentLeak``)."""
        with self.workspaces.checkout(repo.mirror, repo.commit) as path:
            self.check_environment(repo, path)
            record = self.run_suite(repo, path, "clean", "baseline", coverage=with_coverage)
            return record, suite_report.read_coverage_map(path) if with_coverage else None

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
        """n clean and n buggy verifier runs in an order shuffled by ``seed`` (what flakes
        depends on: order, state left behind), each in a freshly reset checkout."""
        order = ["clean"] * n + ["buggy"] * n
        rng = random.Random(seed)
        rng.shuffle(order)
        with RunPool(self, repo, bug, rng, self.workers) as pool:
            records = []
            for at in range(0, len(order), pool.workers):
                self.on_progress(f"{purpose}: runs", at, len(order))
                records += pool.run(order[at:at + pool.workers], purpose)
        return records

    def stabilize(self, repo: RepoSpec, bug: BugSpec, clean_passed: list[bool], buggy_failed: list[bool],
                  seed: int, purpose: str = "flakiness") -> flakiness.Flakiness:
        """Continue the sequential reruns from the outcomes so far (e.g. under a stricter
        target than the bug was validated with); returns the figures over all runs."""
        clean_passed, buggy_failed = list(clean_passed), list(buggy_failed)
        with RunPool(self, repo, bug, random.Random(seed), self.workers) as pool:
            self._sequential(pool, clean_passed, buggy_failed, purpose,
                             lambda done, goal: self.on_progress("flakiness reruns", done, goal))
        return flakiness.measure(clean_passed, buggy_failed, target=self.flake.target)

    def _sequential(self, pool: RunPool, clean_passed: list[bool], buggy_failed: list[bool], purpose: str,
                    progress: Callable[[int, int], None]) -> None:
        """Rerun both sides, a round of ``workers`` runs at a time, until the stop rule is met."""
        while True:
            more_clean, more_buggy = self.flake.more(clean_passed, buggy_failed)
            if not more_clean and not more_buggy:
                return
            progress(len(clean_passed) + len(buggy_failed),
                     len(clean_passed) + len(buggy_failed) + more_clean + more_buggy)
            order = ["clean"] * more_clean + ["buggy"] * more_buggy
            pool.rng.shuffle(order)
            for record in pool.run(order[:pool.workers], purpose):
                if record.code == "clean":
                    clean_passed.append(record.outcome == "passed")
                else:
                    buggy_failed.append(record.outcome == "failed")

    def validate(self, repo: RepoSpec, bug: BugSpec, seed: int | None = None, _depth: int = 0) -> Verdict:
        """Run every check; the cheap ones first so most bad candidates stop early.

        A verifier run that goes the wrong way is not trusted alone: that side is confirmed
        and the bug is invalid (with the reason and K/N) only if no run went the right way.
        Then sequential reruns measure flakiness (``StopRule``). A bug whose patch has hunks
        not needed on its own is validated again without them (the verdict keeps both)."""
        seed = random.randrange(2**31) if seed is None else seed
        rng = random.Random(seed)
        with RunPool(self, repo, bug, rng, self.workers) as pool:
            outcome = self._validate(repo, bug, pool, _depth)
        if isinstance(outcome, Verdict):
            return outcome
        needed, dropped = outcome
        result = self.validate(repo, BugSpec(patch=join_hunks(needed), verifier=bug.verifier), seed=seed, _depth=1)
        result.original_patch, result.dropped = bug.patch, dropped
        return result

    def _validate(self, repo: RepoSpec, bug: BugSpec, pool: RunPool, depth: int):
        """A Verdict, or (needed hunks, dropped hunks) when the patch should be reduced first."""
        total = 3 + 2 * min(self.flake.needed, self.flake.max_runs)
        progress = lambda step, done: self.on_progress(step, done, total)  # noqa: E731
        clean: list[RunRecord] = []
        buggy: list[RunRecord] = []

        def figures() -> flakiness.Flakiness:  # K/N of the runs so far, kept on invalid verdicts too
            return flakiness.measure([r.outcome == "passed" for r in clean], [r.outcome == "failed" for r in buggy])

        def invalid(kind: str, reason: str) -> Verdict:
            return Verdict("invalid", reason, kind, patch=bug.patch, flakiness=figures())

        def settled(runs: list[RunRecord], side: str, want: str) -> Verdict | None:
            """None when some run of this side went the right way (confirming a wrong first run)."""
            first = runs[0]
            if first.outcome != want:
                deterministic = limit_hit(first) or first.outcome == "no_tests"
                runs += pool.run([side] * (1 if deterministic else self.confirm_runs), "flakiness")
            if any(r.outcome == want for r in runs):
                return None
            return invalid(*self._wrong_way(side, runs))

        # 1. The patch applies and reverses to the very same code, and there the verifier
        #    passes: "passes on clean code" and "the reverse patch restores the pass" in one
        #    run (the tree is byte-identical to clean, checked with git).
        progress("verifier on clean code (patch applied and reversed)", 0)
        checkout = pool.checkout()
        try:
            path = checkout.prepare(patch=bug.patch, reverse_patch=bug.patch)
            if not is_pristine(path):
                return invalid("reverse_does_not_restore", "the reverse patch does not restore the original code")
            seed = pool.rng.randrange(2**31)
            clean.append(self.verifier_record(self.exec_verifier(repo, bug.verifier, path, seed=seed),
                                              "reverse", "validation", seed))
        except PatchError as exc:
            kind = "reverse_does_not_apply" if "in reverse" in str(exc) else "patch_does_not_apply"
            return invalid(kind, str(exc))
        finally:
            pool.release(checkout)
        if verdict := settled(clean, "clean", "passed"):
            return verdict

        # 2. It fails on buggy code (confirmed before the suite runs: a hang costs its limit
        #    twice, not more), and the full suite shows which tests the bug breaks.
        progress("verifier on buggy code", 1)
        buggy += pool.run(["buggy"], "validation")
        if verdict := settled(buggy, "buggy", "failed"):
            return verdict
        scope = self.tests_to_run(repo, bug.patch)
        progress("test suite on buggy code" if scope is None else f"the {len(scope)} test(s) covering the patch", 2)
        checkout = pool.checkout()
        try:
            suite = self.run_suite(repo, checkout.prepare(patch=bug.patch), "buggy", "validation", tests=scope)
        finally:
            pool.release(checkout)

        # 3. The suite: F2P ≥ 1, P2P ≥ 1, nothing newly passing, no silent errors.
        verdict = self._judge_suite(repo, bug, suite, ran_all=scope is None)
        if verdict.status == "invalid":
            verdict.flakiness = figures()
            return verdict

        # 4. Every hunk is needed: reverting it alone fixes at least one failing test.
        hunks = split_hunks(bug.patch)
        if len(hunks) > 1 and depth == 0:
            needed = [h for h in hunks if self._hunk_needed(repo, pool, hunks, h, verdict.fail_to_pass)]
            if not needed:
                return invalid("decorative_hunks", "no single hunk is needed on its own")
            if len(needed) < len(hunks):
                return needed, [h for h in hunks if h not in needed]

        # 5. Flakiness: sequential reruns of both sides until the bound meets the target.
        clean_passed = [r.outcome == "passed" for r in clean]
        buggy_failed = [r.outcome == "failed" for r in buggy]
        self._sequential(pool, clean_passed, buggy_failed, "flakiness",
                         lambda done, goal: self.on_progress("flakiness reruns", 3 + done, 3 + goal))
        verdict.flakiness = flakiness.measure(clean_passed, buggy_failed, target=self.flake.target)
        if verdict.flakiness.disagrees:
            verdict.status, verdict.reason = "flaky", verdict.flakiness.describe()
        progress("done", total)
        return verdict

    def _wrong_way(self, side: str, runs: list[RunRecord]) -> tuple[str, str]:
        """(kind, reason) for a side none of whose runs went the expected way."""
        n = len(runs)
        hits = {limit_hit(r) for r in runs}
        if len(hits) == 1 and "" not in hits:
            limit = hits.pop()
            detail = f" of {self.limits.timeout_s:g} s" if limit == KILLED_TIMEOUT else ""
            return f"{limit}_{side}", f"the verifier hits the {limit} limit{detail} on {side} code ({n}/{n} runs)"
        if all(r.outcome == "no_tests" for r in runs):
            return "no_tests_ran", f"the verifier runs no test on {side} code ({n}/{n} runs: pytest found nothing to run)"
        if side == "clean":
            return "verifier_fails_clean", f"verifier does not pass on clean code ({_outcomes(runs)})"
        return "verifier_passes_buggy", f"verifier does not fail on buggy code ({_outcomes(runs)})"

    def tests_to_run(self, repo: RepoSpec, patch: str) -> list[str] | None:
        """The tests a candidate's suite run needs (None: the whole suite). A test that does not
        execute any patched line cannot change outcome, so it is not run again."""
        if self.suite_scope != "covering" or not repo.coverage:
            return None
        return coverage_map.tests_for_patch(repo.coverage, patch)

    def _judge_suite(self, repo: RepoSpec, bug: BugSpec, suite: RunRecord, ran_all: bool = True) -> Verdict:
        invalid = lambda kind, reason: Verdict("invalid", reason, kind, patch=bug.patch)  # noqa: E731
        if suite.outcome == "timeout":
            return invalid("suite_timeout", "test suite times out on buggy code")
        if suite.outcome == "error":
            return invalid("suite_error", f"test suite exits {suite.exit_code} on buggy code with no failing test")
        was_passing = {t for t, r in repo.baseline.items() if r.get("status") == "passed"}
        now_passing = {t for t, s in suite.tests.items() if s == "passed"}
        if not ran_all:  # the tests not run do not execute the patched code: they pass as before
            now_passing |= was_passing - set(suite.tests)
        newly = sorted(now_passing - was_passing - {t for t, s in suite.tests.items() if t not in repo.baseline})
        if newly:
            return invalid("newly_passing", f"{len(newly)} test(s) pass on buggy code but not on clean code: {', '.join(newly[:5])}")
        f2p = sorted(was_passing - now_passing)
        p2p = sorted(was_passing & now_passing)
        if not f2p:
            return invalid("no_fail_to_pass", "no test of the suite fails on buggy code (FAIL_TO_PASS is empty)")
        if not p2p:
            return invalid("no_pass_to_pass", "every test fails on buggy code (PASS_TO_PASS is empty)")
        return Verdict("valid", patch=bug.patch, fail_to_pass=f2p, pass_to_pass=p2p,
                       suite_scope="full" if ran_all else "covering", suite_tests_run=len(suite.tests))

    def _hunk_needed(self, repo: RepoSpec, pool: RunPool, hunks: list[str], hunk: str, f2p: list[str]) -> bool:
        others = [h for h in hunks if h is not hunk]
        checkout = pool.checkout()
        try:
            record = self.run_suite(repo, checkout.prepare(patch=join_hunks(others)), "hunk", "hunk check", tests=f2p)
        finally:
            pool.release(checkout)
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
        # BugForge verifier: exits 0 only when every listed test passes (5: none ran).
        import sys

        import pytest

        TESTS = {test_ids!r}
        status = pytest.main(["-q", "-p", "no:cacheprovider", *TESTS])
        sys.exit(0 if status == 0 else 5 if status == 5 else 1)
        """
    )


def _outcomes(runs: list[RunRecord]) -> str:
    counts: dict[str, int] = {}
    for r in runs:
        label = limit_hit(r) or r.outcome
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{n}/{len(runs)} {outcome}" for outcome, n in counts.items())
