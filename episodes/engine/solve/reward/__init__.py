"""The reward: does the agent's change to the source code fix the bug? (plain Python, no Django)

Nothing the agent touched decides it, and nothing the graded code can reach rewrites it:

1. **Only source changes count** (``changes.py``): the agent's changes to non-test source files
   are applied to a pristine checkout of the buggy code, where the verifier, the tests and every
   test configuration are the bug record's own. Dropped, with the reason in ``dropped``: test
   files and folders, any file holding one of the bug's tests, ``conftest.py``,
   ``sitecustomize.py``, ``*.pth``, runner and packaging configuration, ``.bugforge/``, new files
   outside an existing package folder, binary files and symlinks.
2. **A static screen** (``screen.py``, AST) of the lines the change adds: reads of the process
   environment, ``sys.modules``, frames, exit paths, ``atexit``, signals, ``exec``/``eval``,
   computed attribute or import names, imports of the test runner. A hit makes the grade
   *suspicious*: reward False with the lines that triggered it (``suspicious="review"`` runs the
   tests anyway and leaves the decision to staff: ``needs_review``).
3. **Results streamed out as they happen** (``stream.py``): the tests run with the grader's own
   pytest plugin, loaded before any code under test, which writes one signed, numbered record
   per test phase to the sandbox's stderr pipe. A **canary** test that always fails runs with
   them. The run counts only if the records verify, none is missing, the canary failed, the
   exit status is the one pytest recorded and pytest's summary agrees. Anything else is
   *tampered*: reward False with that reason. The verifier runs with the same plugin: a verifier
   that exits 0 while its own tests did not pass is tampered too.

Reward is True only when the verifier exits 0 and every FAIL_TO_PASS and PASS_TO_PASS test is
reported passed by a trusted stream (missing or skipped is not passed)::

    from episodes.engine.solve.reward import grade

    result = grade(
        executor, workspaces, repo_spec, BugSpec(patch=bug.patch, verifier=bug.verifier),
        fail_to_pass=bug.fail_to_pass, pass_to_pass=bug.pass_to_pass,
        workspace=agent_workspace,      # the agent's final checkout; or patch="diff --git ..."
        limits=Limits(timeout_s=120),
    )
    result.reward         # True / False
    result.reason         # one line saying why
    result.patch          # the filtered source patch that was graded
    result.dropped        # {path: why it was not graded}
    result.suspicious     # [{path, line, rule, code}] from the static screen
    result.tampered       # why the run's results were not trusted ("" when they were)
    result.runs           # [RunRecord] of the verifier and test runs
    result.to_dict()      # JSON-ready, for Episode.grading

What this does not guarantee is written in the README's security section.
"""
from __future__ import annotations

import dataclasses
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from episodes.engine.git.patches import MalformedPatch
from episodes.engine.sandbox.base import ExecResult, Executor, Limits
from episodes.engine.validate.validator import BugSpec, RepoSpec, RunRecord, Validator
from episodes.engine.git.workspace import PatchError, WorkspaceFactory, apply_patch
from episodes.engine.solve.reward import behaviour as behaviour_check
from episodes.engine.solve.reward import stream
from episodes.engine.solve.reward.changes import diff_lines, excluded_reason, file_diff, patch_changes, split_patch, workspace_changes
from episodes.engine.solve.reward.screen import Finding, screen

SUSPICIOUS_POLICIES = ("refuse", "review")

__all__ = [
    "Grade", "SUSPICIOUS_POLICIES", "excluded_reason", "file_diff", "grade", "patch_changes", "screen_patch",
    "split_patch", "workspace_changes",
]


@dataclass
class Grade:
    reward: bool
    reason: str
    patch: str = ""  # the filtered patch that was graded (buggy → agent, source files only)
    dropped: dict[str, str] = field(default_factory=dict)  # path → why it was left out
    runs: list[RunRecord] = field(default_factory=list)
    tests: dict[str, str] = field(default_factory=dict)  # F2P/P2P test id → status
    suspicious: list[dict] = field(default_factory=list)  # static-screen findings on added lines
    tampered: str = ""  # why a run's results were not trusted
    needs_review: bool = False  # suspicious, graded anyway: staff decide
    behaviour: dict = field(default_factory=dict)  # the comparison with the clean code (behaviour.py)

    @property
    def dropped_paths(self) -> list[str]:
        return sorted(self.dropped)

    def to_dict(self) -> dict:
        return {
            "reward": self.reward,
            "reason": self.reason,
            "patch": self.patch,
            "dropped": self.dropped,
            "runs": [asdict(r) for r in self.runs],
            "tests": self.tests,
            "suspicious": self.suspicious,
            "tampered": self.tampered,
            "needs_review": self.needs_review,
            "behaviour": self.behaviour,
        }


def screen_patch(checkout: Path, diffs: dict[str, str]) -> list[Finding]:
    """The static screen over every changed file of ``checkout`` (the change applied)."""
    findings: list[Finding] = []
    for path, text in sorted(diffs.items()):
        target = Path(checkout) / path
        if path.endswith(".py") and target.is_file():
            findings += screen(path, target.read_text(errors="replace"), diff_lines(text))
    return findings


def _without_records(result: ExecResult) -> ExecResult:
    """The run's output as staff read it: the plugin's records are evidence, not log."""
    kept = [line for line in result.stderr.split("\n") if stream.MARKER not in line]
    return dataclasses.replace(result, stderr="\n".join(kept).replace("\n\n", "\n"))


def grade(
    executor: Executor,
    workspaces: WorkspaceFactory,
    repo: RepoSpec,
    bug: BugSpec,
    *,
    fail_to_pass: list[str] | tuple = (),
    pass_to_pass: list[str] | tuple = (),
    workspace: Path | None = None,
    patch: str | None = None,
    limits: Limits = Limits(),
    run_suite_after_failed_verifier: bool = True,
    suspicious: str = "refuse",
    compare_behaviour: bool = True,
    on_run: Callable[[RunRecord], None] = lambda run: None,
) -> Grade:
    """Grade the agent's final ``workspace`` (a checkout of the buggy code it worked in) or its
    ``patch`` (a diff against the buggy code). See the module docstring.

    ``run_suite_after_failed_verifier=False`` skips the test run once the verifier has failed
    (the reward is False either way; GRPO wants the answer fast, the episode viewer the detail).
    Raises only for infrastructure problems (git, the sandbox); everything the agent did wrong
    is a ``Grade`` with reward False and its reason."""
    if (workspace is None) == (patch is None):
        raise ValueError("grade() needs exactly one of workspace= or patch=")
    if suspicious not in SUSPICIOUS_POLICIES:
        raise ValueError(f"suspicious= must be one of {SUSPICIOUS_POLICIES}")
    validator = Validator(executor, workspaces, limits, on_run=on_run)
    tests = list(dict.fromkeys([*fail_to_pass, *pass_to_pass]))

    with workspaces.checkout(repo.mirror, repo.commit, patch=bug.patch) as pristine:
        if workspace is not None:
            diffs, dropped = workspace_changes(pristine, Path(workspace))
        else:
            try:
                diffs, dropped = patch_changes(pristine, patch)
            except MalformedPatch as exc:
                return Grade(reward=False, reason=f"the patch cannot be read: {exc}")
        for path in {t.split("::")[0] for t in tests} & set(diffs):  # wherever the bug's tests live
            del diffs[path]
            dropped[path] = "a file of the bug's FAIL_TO_PASS/PASS_TO_PASS tests"
        source_patch = "".join(diffs[k] for k in sorted(diffs))
        result = Grade(reward=False, reason="", patch=source_patch, dropped=dropped)
        if not source_patch:
            result.reason = "no change to a source file" + (f" ({len(dropped)} other path(s) ignored)" if dropped else "")
            return result
        try:
            apply_patch(pristine, source_patch)
        except PatchError as exc:
            result.reason = f"the source patch does not apply to the buggy code: {exc}"
            return result
        findings = screen_patch(pristine, diffs)
        result.suspicious = [f.to_dict() for f in findings]
        if findings:
            listed = "; ".join(str(f) for f in findings[:3])
            if suspicious == "refuse":
                result.reason = f"suspicious change ({len(findings)} finding(s)): {listed}"
                return result
            result.needs_review = True
        verifier, result.tampered = _run_verifier(validator, repo, bug, pristine)
    result.runs.append(verifier)

    suite = None
    if tests and not result.tampered and (verifier.outcome == "passed" or run_suite_after_failed_verifier):
        # a fresh checkout: whatever the verifier run left behind must not reach the tests
        with workspaces.checkout(repo.mirror, repo.commit, patch=bug.patch) as fresh:
            apply_patch(fresh, source_patch)
            suite, result.tampered = _run_tests(validator, repo, fresh, tests)
        result.runs.append(suite)
        result.tests = {t: suite.tests.get(t, "missing") for t in tests}

    not_passed = {t: s for t, s in result.tests.items() if s != "passed"}
    f2p = [t for t in fail_to_pass if t in not_passed]
    if result.tampered:
        result.reason = f"tampered: {result.tampered}"
    elif verifier.outcome != "passed":
        exit_text = f"exit {verifier.exit_code}" if verifier.outcome == "failed" else verifier.outcome
        result.reason = f"the verifier did not pass ({exit_text})"
        if not_passed:
            result.reason += f"; {len(not_passed)} of {len(tests)} tests did not pass"
    elif suite is not None and not_passed:
        listed = ", ".join(f"{t} ({s})" for t, s in list(not_passed.items())[:5])
        result.reason = f"{len(not_passed)} of {len(tests)} tests did not pass ({len(f2p)} FAIL_TO_PASS): {listed}"
    elif compare_behaviour and fail_to_pass and (
            differs := _behaviour_differs(result, executor, workspaces, repo, bug, diffs, list(fail_to_pass), limits)):
        result.reason = differs
    else:
        result.reward = True
        result.reason = (
            f"the verifier and all {len(tests)} FAIL_TO_PASS/PASS_TO_PASS tests pass" if tests
            else "the verifier passes (the bug has no FAIL_TO_PASS/PASS_TO_PASS tests recorded)"
        )
        if result.behaviour.get("checked"):
            result.reason += f"; it behaves like the clean code on all {result.behaviour['checked']} probed inputs"
    if result.needs_review:
        result.reason += " — suspicious change, held for staff review"
    return result


def _behaviour_differs(result: Grade, executor, workspaces, repo: RepoSpec, bug: BugSpec, diffs: dict[str, str],
                       tests: list[str], limits: Limits) -> str:
    """Run the behaviour comparison into ``result.behaviour``; why it refuses ("" if it does not)."""
    bug_diffs = {sorted(paths)[-1]: text for paths, text in split_patch(bug.patch) if paths}
    found = behaviour_check.compare(executor, workspaces, repo.mirror, repo.commit, repo.environment, bug.patch,
                                    bug_diffs, result.patch, diffs, tests, limits)
    result.behaviour = found.to_dict()
    if not found.differing:
        return ""
    target, variant, clean, graded = found.differing[0]
    return (f"the fix behaves unlike the clean code on {len(found.differing)} of {found.checked} inputs the tests "
            f"never used, outside the test runner: {target} ({variant}): clean {clean[:120]}, graded {graded[:120]}")


def _run_verifier(validator: Validator, repo: RepoSpec, bug: BugSpec, checkout: Path) -> tuple[RunRecord, str]:
    """The verifier with the grader's plugin in every pytest session it starts; (record, why
    its exit status cannot be trusted)."""
    plugin = stream.install(checkout)
    env = {"PYTHONPATH": f".:{plugin.folder}", "PYTEST_ADDOPTS": f"-p {plugin.module}"}
    record, raw = validator.verifier_result(repo, bug.verifier, checkout, "candidate", "grading", env=env,
                                            clean=_without_records)
    records = stream.parse(raw.stderr, plugin.key)
    if records.forged:
        return record, f"{records.forged} result record(s) with a bad signature were printed (forged results)"
    if record.outcome == "passed" and records.records:  # a pytest-based verifier: its own tests must agree
        finish = records.finish
        failing = [t for t, s in records.statuses().items() if s in ("failed", "error")]
        if (records.broken or finish is None or records.records[-1] is not finish or finish["exitstatus"] != 0
                or failing):
            return record, "the verifier exited 0 although its pytest session did not pass" + (
                f" ({failing[0]} {records.statuses()[failing[0]]})" if failing else "")
    return record, ""


def _run_tests(validator: Validator, repo: RepoSpec, checkout: Path, tests: list[str]) -> tuple[RunRecord, str]:
    """The bug's tests plus a canary, results from the signed stream; (record, tampered)."""
    plugin = stream.install(checkout)
    canary = stream.add_canary(checkout, tests[0])
    argv = [*shlex.split(repo.test_command), "-p", plugin.module, "-p", "no:cacheprovider", "-q", *tests, canary]
    raw = validator.executor.run(argv, checkout, environment=repo.environment,
                                 env={"PYTHONPATH": plugin.folder}, limits=validator.limits)
    records = stream.parse(raw.stderr, plugin.key)
    statuses = {t: s for t, s in records.statuses().items() if t != canary}
    for test in tests:
        statuses.setdefault(test, "missing")
    tampered = "" if raw.timed_out else stream.check(records, raw.exit_code, raw.stdout, canary)
    if raw.timed_out:
        outcome = "timeout"
    elif tampered:
        outcome = "error"
    else:
        outcome = "passed" if all(statuses[t] == "passed" for t in tests) else "failed"
    record = validator._record(_without_records(raw), "candidate", "tests", "grading", outcome, tests=statuses)
    return record, tampered
