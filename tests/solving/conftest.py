"""Fixtures for the solving tests: the sample repository's shipping bug, validated once per
session in the real sandbox, as plain engine data (no Django needed for the agent and reward)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from django.utils import timezone

from tests.llm.fake_upstream import Reply

from episodes.engine.flakiness import StopRule
from episodes.engine.coverage_map import COVERAGE_PACKAGE
from episodes.engine.sandbox import EnvironmentSpec, Limits, make_executor
from episodes.engine.samples import SAMPLE_BUGS, SampleBug, sample_patch
from episodes.engine.validation import BugSpec, RepoSpec, Validator
from episodes.engine.workspace import WorkspaceFactory
from episodes.models import Bug, Repository

SHIPPING = SAMPLE_BUGS[0]  # `<=` became `<` in ShippingPolicy.band_for
assert SHIPPING.path == "cartcalc/shipping.py"


@dataclass
class EngineBug:
    executor: object
    workspaces: WorkspaceFactory
    repo: RepoSpec
    bug: BugSpec
    fail_to_pass: list[str]
    pass_to_pass: list[str]
    sample: SampleBug

    def grade(self, **kw):
        from episodes.engine.reward import grade

        return grade(
            self.executor, self.workspaces, self.repo, self.bug,
            fail_to_pass=self.fail_to_pass, pass_to_pass=self.pass_to_pass, limits=Limits(timeout_s=60), **kw,
        )

    def checkout(self):
        """A workspace with the buggy code, as an agent gets it."""
        return self.workspaces.checkout(self.repo.mirror, self.repo.commit, patch=self.bug.patch)


@pytest.fixture(scope="session")
def engine_bug(work_dir, sample_git) -> EngineBug:
    """The shipping sample bug, validated (one run a side) so its FAIL_TO_PASS/PASS_TO_PASS are real.
    Same environment spec as `episodes.sandboxes.repo_spec`, so Django tests reuse the build."""
    path, commit = sample_git
    executor = make_executor("local", cache_dir=work_dir)
    workspaces = WorkspaceFactory(work_dir)
    mirror = workspaces.ensure_mirror(str(path), commit)
    spec = EnvironmentSpec(name="cartcalc", pip_packages=(COVERAGE_PACKAGE,), setup_command="")
    with workspaces.checkout(mirror, commit) as source:
        environment = executor.ensure_environment(spec, source)
    repo = RepoSpec(mirror=mirror, commit=commit, test_command="python -m pytest", environment=environment)
    validator = Validator(executor, workspaces, Limits(timeout_s=60), flake=StopRule(target=0.99))  # one run a side
    record, _ = validator.baseline(repo, with_coverage=False)
    repo.baseline = {t: {"status": s} for t, s in record.tests.items()}
    bug = BugSpec(sample_patch(workspaces, mirror, commit, SHIPPING), SHIPPING.verifier)
    verdict = validator.validate(repo, bug, seed=7)
    assert verdict.status == "valid", verdict.reason
    return EngineBug(executor, workspaces, repo, bug, verdict.fail_to_pass, verdict.pass_to_pass, SHIPPING)


def fix(workspace: Path, sample: SampleBug = SHIPPING, replacement: str | None = None) -> None:
    """Undo the sample bug in ``workspace`` (or put ``replacement`` where the bug is)."""
    f = workspace / sample.path
    text = f.read_text()
    assert sample.new in text
    f.write_text(text.replace(sample.new, sample.old if replacement is None else replacement, 1))


def policy(sample, wrong_for_attempts=()):
    """A stateless scripted model: what it does depends only on the conversation it is sent,
    so it serves any number of episodes (the n-th conversation to start is attempt n)."""
    started = []

    def reply(recorded):
        messages = recorded.body["messages"]
        if recorded.protocol == "anthropic":
            tool_results = [b for m in messages if isinstance(m["content"], list)
                            for b in m["content"] if b.get("type") == "tool_result"]
        else:
            tool_results = [m for m in messages if m["role"] == "tool"]
        if not tool_results:
            started.append(1)
            return Reply(tool_calls=[{"id": "c1", "name": "view", "arguments": {"path": sample.path}}],
                         tokens_in=500, tokens_out=20)
        if len(tool_results) == 1:
            wrong = len(started) in wrong_for_attempts
            new = "if weight_grams < band.max_grams - 1:" if wrong else sample.old
            return Reply(tool_calls=[{"id": "c2", "name": "edit",
                                      "arguments": {"path": sample.path, "old": sample.new, "new": new}}],
                         tokens_in=900, tokens_out=40)
        return Reply(tool_calls=[{"id": "c3", "name": "submit", "arguments": {}}], tokens_in=1000, tokens_out=5)

    return reply


@pytest.fixture
def ready_repo(db, sandbox_settings, sample_git, engine_bug):
    """The sample repository row, ready, with the baseline the session measured once in the
    sandbox (``engine_bug``): the same data the shared fixture records, without re-running it
    for every test."""
    path, commit = sample_git
    return Repository.objects.create(
        name="cartcalc", source=str(path), pinned_commit=commit, status=Repository.Status.READY,
        baseline_tests=engine_bug.repo.baseline, baseline_at=timezone.now(), baseline_duration_s=2.0,
    )


@pytest.fixture
def approved_bug(ready_repo, engine_bug):
    """The shipping sample bug as an approved Bug row (its F2P/P2P from the session's validation)."""
    return Bug.objects.create(
        repository=ready_repo, base_commit=ready_repo.pinned_commit, patch=engine_bug.bug.patch,
        verifier=engine_bug.bug.verifier, fail_to_pass=engine_bug.fail_to_pass, pass_to_pass=engine_bug.pass_to_pass,
        problem_statement=engine_bug.sample.problem_statement, status=Bug.Status.APPROVED, target=engine_bug.sample.target,
    )
