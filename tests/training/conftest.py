"""Training fixtures: one tiny model per test var dir (built once), sample bugs validated in
the real sandbox, and datasets built from them."""
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny offline model, built once under the test var dir and shared by every test and
    every parallel worker (the build is locked and atomic; each worker's var dir is a sub-folder)."""
    import os

    from django.conf import settings

    from training.tiny import make_tiny_model

    var_dir = Path(settings.VAR_DIR)
    shared = var_dir.parent if os.environ.get("PYTEST_XDIST_WORKER") else var_dir
    return str(make_tiny_model(shared / "models" / "tiny-test"))


_VERDICTS: dict = {}


def add_sample_bug(repo, index: int = 0, validate: bool = True, status: str = "approved"):
    """Sample bug ``index`` of examples/cartcalc, validated (stable at the tests' target) and approved."""
    from episodes import jobs
    from episodes.engine.samples import SAMPLE_BUGS, sample_patch
    from episodes.models import Bug
    from episodes.sandboxes import workspaces

    sample = SAMPLE_BUGS[index]
    mirror = workspaces().ensure_mirror(repo.source, repo.pinned_commit)
    bug = Bug.objects.create(
        repository=repo, base_commit=repo.pinned_commit, verifier=sample.verifier, target=sample.target,
        patch=sample_patch(workspaces(), mirror, repo.pinned_commit, sample),
        problem_statement=sample.problem_statement, difficulty="<15m",
    )
    if validate:
        # The same patch on the same commit gets the same verdict: validate it once per session
        # in the real sandbox and give later copies (after a transactional test's flush) that verdict.
        key = (repo.pinned_commit, bug.patch_hash)
        if key not in _VERDICTS:
            assert jobs.validate_bug(bug.pk) == "valid", Bug.objects.get(pk=bug.pk).invalid_reason
            bug.refresh_from_db()
            _VERDICTS[key] = {name: getattr(bug, name) for name in (
                "fail_to_pass", "pass_to_pass", "flip_rate", "clean_runs", "clean_passes", "buggy_runs",
                "buggy_fails", "flake_upper_bound", "flake_target")}
        Bug.objects.filter(pk=bug.pk).update(status=status, **_VERDICTS[key])
    bug.refresh_from_db()
    return bug


@pytest.fixture
def approved_bug(sample_repo):
    return add_sample_bug(sample_repo, 0)


@pytest.fixture
def rl_dataset(approved_bug):
    from training.datasets import build_rl_dataset

    return build_rl_dataset("rl-one", {"repository": "cartcalc", "heldout_fraction": 0})


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


@pytest.fixture
def sft_dataset(db):
    """An SFT set of 4 successful episodes on 4 bugs of one repository, split 3 / 1 by bug."""
    from episodes.models import Teacher
    from training.datasets import build_sft_dataset

    repo = make_repo("lib-a")
    teacher = Teacher.objects.create(name="teach", terms_allow_training=True)
    for n in range(4):
        make_episode(make_bug(repo, n), teacher, text=f"bug {n}")
    return build_sft_dataset("sft-four", {"heldout_fraction": 0.25})
