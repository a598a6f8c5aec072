"""Mirrors, worktrees and patches with real git."""
import subprocess

import pytest

from episodes.engine.workspace import GitError, PatchError, WorkspaceFactory, apply_patch, diff, join_hunks, split_hunks


@pytest.fixture
def origin(tmp_path):
    repo = tmp_path / "origin"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    run("init", "-q", "-b", "main")
    (repo / "a.py").write_text("".join(f"line{i}\n" for i in range(30)))
    (repo / "b.py").write_text("x = 1\n")
    run("add", "-A")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return repo, subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()


def test_checkout_apply_diff_and_cleanup(origin, work_dir):
    repo, commit = origin
    factory = WorkspaceFactory(work_dir / "ws-test")
    mirror = factory.ensure_mirror(str(repo), commit)
    assert factory.ensure_mirror(str(repo), commit) == mirror  # reused, not cloned again
    with factory.checkout(mirror, commit) as ws:
        (ws / "b.py").write_text("x = 2\n")
        patch = diff(ws)
    assert "-x = 1" in patch and "+x = 2" in patch
    with factory.checkout(mirror, commit, patch=patch) as ws:
        assert (ws / "b.py").read_text() == "x = 2\n"
        kept = ws
    assert not kept.exists()
    with factory.checkout(mirror, commit, patch=patch, reverse_patch=patch) as ws:
        assert (ws / "b.py").read_text() == "x = 1\n"


def test_bad_patch_and_unknown_commit_say_why(origin, work_dir):
    repo, commit = origin
    factory = WorkspaceFactory(work_dir / "ws-test2")
    mirror = factory.ensure_mirror(str(repo), commit)
    with factory.checkout(mirror, commit) as ws:
        with pytest.raises(PatchError, match="does not apply"):
            apply_patch(ws, "--- a/b.py\n+++ b/b.py\n@@ -1 +1 @@\n-y = 3\n+y = 4\n")
    with pytest.raises(GitError, match="not found"):
        factory.ensure_mirror(str(repo), "0" * 40)
    with pytest.raises(GitError, match="clone"):
        factory.ensure_mirror(str(work_dir / "no-such-repo"), commit)


def test_split_and_join_hunks_round_trip(origin, work_dir):
    repo, commit = origin
    factory = WorkspaceFactory(work_dir / "ws-test3")
    mirror = factory.ensure_mirror(str(repo), commit)
    with factory.checkout(mirror, commit) as ws:
        text = (ws / "a.py").read_text().replace("line2\n", "LINE2\n").replace("line25\n", "LINE25\n")
        (ws / "a.py").write_text(text)
        (ws / "b.py").write_text("x = 3\n")
        patch = diff(ws)
    hunks = split_hunks(patch)
    assert len(hunks) == 3
    assert join_hunks(hunks) == patch
    with factory.checkout(mirror, commit, patch=join_hunks([hunks[0], hunks[2]])) as ws:
        assert "LINE2" in (ws / "a.py").read_text() and "LINE25" not in (ws / "a.py").read_text()
