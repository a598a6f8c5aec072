"""The workspace an agent gets holds nothing that leads to the clean code: one commit of the buggy
code, no history, uniform file times, and no file reachable from the sandbox with the fix."""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

from episodes.engine.validate.flakiness import StopRule
from episodes.engine.sandbox.base import Limits
from episodes.engine.git.workspace import TASK_TIME, git

SCAN = textwrap.dedent("""\
    import json, os, sys
    needle = sys.argv[1].encode()
    roots = [p for p in sys.path if p and os.path.isdir(p)] + [os.getcwd(), "/tmp", sys.prefix]
    hits, seen = [], 0
    for root in dict.fromkeys(roots):
        for dirpath, dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    with open(path, "rb") as f:
                        data = f.read(4_000_000)
                except OSError:
                    continue
                seen += 1
                if needle in data:
                    hits.append(path)
    print(json.dumps({"hits": hits, "files": seen}))
    """)


def test_one_commit_of_the_buggy_code_with_uniform_times(engine_bug):
    sample = engine_bug.sample
    with engine_bug.workspaces.task_checkout(engine_bug.repo.mirror, engine_bug.repo.commit, patch=engine_bug.bug.patch) as ws:
        assert sample.new in (ws / sample.path).read_text()
        assert git("rev-list", "--all", cwd=ws).split() == [git("rev-parse", "HEAD", cwd=ws).strip()]
        assert git("rev-parse", "HEAD", cwd=ws).strip() != engine_bug.repo.commit
        assert git("remote", cwd=ws) == "" and git("tag", cwd=ws) == "" and git("stash", "list", cwd=ws) == ""
        assert not (ws / ".git/logs").exists() and not (ws / ".git/hooks").exists()
        assert git("status", "--porcelain", cwd=ws) == ""
        # no git object anywhere holds the clean line
        objects = git("cat-file", "--batch-all-objects", "--batch-check=%(objectname)", cwd=ws).split()
        assert all(sample.old not in git("cat-file", "-p", o, cwd=ws) for o in objects)
        times = {os.lstat(os.path.join(d, n)).st_mtime for d, dirs, files in os.walk(ws)
                 if "/.git" not in d + "/" for n in files + [x for x in dirs if x != ".git"]}
        assert times == {TASK_TIME}  # the patched file is not the newest


def test_git_works_inside_the_sandbox_and_shows_only_the_agents_change(engine_bug):
    with engine_bug.workspaces.task_checkout(engine_bug.repo.mirror, engine_bug.repo.commit, patch=engine_bug.bug.patch) as ws:
        run = lambda cmd: engine_bug.executor.run(["bash", "-c", cmd], ws, environment=engine_bug.repo.environment,  # noqa: E731
                                                  limits=Limits(timeout_s=60))
        before = run("git status --porcelain && git log --oneline | wc -l")
        assert before.exit_code == 0, before.stderr
        assert before.stdout.split() == ["1"]
        after = run("echo '# note' >> cartcalc/money.py && git status --porcelain && git diff --stat")
        assert after.exit_code == 0, after.stderr
        assert after.stdout.splitlines()[0] == " M cartcalc/money.py"
        assert "1 file changed" in after.stdout


def test_no_file_reachable_from_the_sandbox_holds_the_clean_line(engine_bug):
    sample = engine_bug.sample
    with engine_bug.workspaces.task_checkout(engine_bug.repo.mirror, engine_bug.repo.commit, patch=engine_bug.bug.patch) as ws:
        (ws / ".scan.py").write_text(SCAN)
        result = engine_bug.executor.run(["python", ".scan.py", sample.old], ws, environment=engine_bug.repo.environment,
                                         limits=Limits(timeout_s=120))
        (ws / ".scan.py").unlink()
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["files"] > 100  # the environment's site-packages were scanned, not just the checkout
    assert report["hits"] == []


def test_an_environment_holding_the_packages_own_code_is_refused(engine_bug):
    """As after a `pip install .`: the clean source would sit in site-packages for the agent to read."""
    import glob
    import shutil

    import pytest

    from episodes.engine.validate.validator import EnvironmentLeak, Validator, own_packages

    validator = Validator(engine_bug.executor, engine_bug.workspaces, Limits(timeout_s=60), flake=StopRule(target=0.99))
    env_dir = engine_bug.executor.environment_path(engine_bug.repo.environment)
    site = Path(glob.glob(str(env_dir / "lib/python3*/site-packages"))[0])
    with engine_bug.workspaces.checkout(engine_bug.repo.mirror, engine_bug.repo.commit) as clean:
        assert own_packages(clean) == ["cartcalc"]
        validator.check_environment(engine_bug.repo, clean)  # the real environment holds no copy
        shutil.copytree(clean / "cartcalc", site / "cartcalc")
        try:
            with pytest.raises(EnvironmentLeak, match=r"contains the repository's own code \(cartcalc at .*site-packages"):
                validator.check_environment(engine_bug.repo, clean)
        finally:
            shutil.rmtree(site / "cartcalc")
