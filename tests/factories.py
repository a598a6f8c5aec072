"""Plain helpers that make test data (no fixtures: those live in the conftests). Imported by
test modules of any folder, so no test imports another folder's conftest."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.llm.fake_upstream import Reply

from episodes.engine.repos.samples import SAMPLE_BUGS, SampleBug
from episodes.engine.git.workspace import WorkspaceFactory
from episodes.engine.sandbox import Limits
from episodes.engine.validate.validator import BugSpec, RepoSpec

def add_sample_bug(repo, index: int = 0, validate: bool = True, status: str = "approved"):
    """Sample bug ``index`` of examples/cartcalc, validated (stable at the tests' target) and approved."""
    from episodes.validation import jobs
    from episodes.engine.repos.samples import SAMPLE_BUGS, sample_patch
    from episodes.models import Bug
    from episodes.sandboxes import workspaces
    from tests.run_cache import measured_once

    sample = SAMPLE_BUGS[index]
    mirror = workspaces().ensure_mirror(repo.source, repo.pinned_commit)
    bug = Bug.objects.create(
        repository=repo, base_commit=repo.pinned_commit, verifier=sample.verifier, target=sample.target,
        patch=sample_patch(workspaces(), mirror, repo.pinned_commit, sample),
        problem_statement=sample.problem_statement, difficulty="<15m",
    )
    if validate:
        # The same patch on the same commit gets the same verdict: validate it once a run in the
        # real sandbox and give later copies (other tests, other workers) that verdict.
        def measure() -> dict:
            assert jobs.validate_bug(bug.pk) == "valid", Bug.objects.get(pk=bug.pk).invalid_reason
            bug.refresh_from_db()
            return {name: getattr(bug, name) for name in (
                "fail_to_pass", "pass_to_pass", "flip_rate", "clean_runs", "clean_passes", "buggy_runs",
                "buggy_fails", "flake_upper_bound", "flake_target")}

        from django.conf import settings

        key = f"sample bug {repo.pinned_commit} {bug.patch_hash} at flake target {settings.BUGFORGE_FLAKE_TARGET}"
        verdict = measured_once(key, measure)
        Bug.objects.filter(pk=bug.pk).update(status=status, **verdict)
    bug.refresh_from_db()
    return bug


SFT_TOOLS = [{"type": "function", "function": {
    "name": "shell", "description": "Run a shell command",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}]


def trajectory(text: str) -> dict:
    """A small canonical trajectory: one tool call, its result, a final answer."""
    return {
        "messages": [
            {"role": "system", "content": "You fix bugs."},
            {"role": "user", "content": f"Fix: {text}"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "shell", "arguments": '{"command": "pytest -q"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "1 failed, 9 passed"},
            {"role": "assistant", "content": f"Fixed {text}."},
        ],
        "tools": SFT_TOOLS,
    }


def make_episode(bug, teacher, reward=1.0, text="the bug"):
    from episodes.models import Episode

    return Episode.objects.create(bug=bug, teacher=teacher, reward=reward, trajectory=trajectory(text),
                                  status="solved" if reward else "unsolved")


def make_repo(name: str):
    from episodes.models import Repository

    return Repository.objects.create(name=name, source=f"/nonexistent/{name}", pinned_commit="0" * 40)


# what validation at the tests' 50% target leaves on a steady verifier: 5 runs a side, "< 45%"
STABLE_FIGURES = {"clean_runs": 5, "clean_passes": 5, "buggy_runs": 5, "buggy_fails": 5, "flip_rate": 0.0,
                  "flake_upper_bound": 0.451, "flake_target": 0.5}


def make_bug(repo, n: int, status="approved", **fields):
    from episodes.models import Bug

    return Bug.objects.create(repository=repo, base_commit=repo.pinned_commit, patch=f"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-{n}\n+{n}!\n",
                              verifier="import sys; sys.exit(0)", problem_statement=f"bug {n}", status=status,
                              **(STABLE_FIGURES | fields))


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
        from episodes.engine.solve.reward import grade

        return grade(
            self.executor, self.workspaces, self.repo, self.bug,
            fail_to_pass=self.fail_to_pass, pass_to_pass=self.pass_to_pass, limits=Limits(timeout_s=60), **kw,
        )

    def checkout(self):
        """A workspace with the buggy code, as an agent gets it."""
        return self.workspaces.checkout(self.repo.mirror, self.repo.commit, patch=self.bug.patch)


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
