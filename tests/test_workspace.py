"""Mirrors, worktrees and patches with real git."""
import subprocess

import pytest

from episodes.engine.git.workspace import GitError, PatchError, WorkspaceFactory, apply_patch, diff, join_hunks, split_hunks


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


def test_reusable_checkout_undoes_everything_a_run_did(origin, work_dir, tmp_path):
    """What a hostile verifier run could leave behind to steer the next run (or the reset
    itself) is gone after ``prepare``: a same-size edit with the mtime put back, a deleted
    file, new files and a nested repository, and a `.git` link pointed at a decoy repository."""
    import os

    from episodes.engine.git.workspace import is_pristine

    repo, commit = origin
    factory = WorkspaceFactory(work_dir / "ws-reuse")
    mirror = factory.ensure_mirror(str(repo), commit)
    patch = "--- a/b.py\n+++ b/b.py\n@@ -1 +1 @@\n-x = 1\n+x = 3\n"
    decoy = tmp_path / "decoy"
    subprocess.run(["git", "init", "-q", str(decoy)], check=True)
    (decoy / "keep.txt").write_text("mine\n")
    with factory.reusable(mirror, commit) as checkout:
        ws = checkout.prepare(patch=patch)
        link = (ws / ".git").read_text()
        stat = os.stat(ws / "a.py")
        (ws / "a.py").write_text((ws / "a.py").read_text().replace("line7", "LINE7"))  # same size
        os.utime(ws / "a.py", ns=(stat.st_atime_ns, stat.st_mtime_ns))
        (ws / "b.py").unlink()
        (ws / "cache").mkdir()
        (ws / "cache" / "answers.pyc").write_bytes(b"x")
        subprocess.run(["git", "init", "-q", str(ws / "nested")], check=True)
        (ws / ".git").write_text(f"gitdir: {decoy / '.git'}\n")
        assert checkout.prepare(patch=patch) == ws  # the same folder, reset
        assert (ws / ".git").read_text() == link and (ws / "a.py").read_text() == (repo / "a.py").read_text()
        assert (ws / "b.py").read_text() == "x = 3\n"
        assert not (ws / "cache").exists() and not (ws / "nested").exists()
        assert (decoy / "keep.txt").read_text() == "mine\n"  # the reset ran in the worktree, not the decoy
        checkout.prepare()
        assert is_pristine(ws)
    assert not ws.exists()
