"""Git mirrors and disposable workspaces (plain Python, no Django).

A repository is fetched once into a bare mirror; each run gets its own `git worktree` at the
pinned commit (cheap: files are checked out, history is shared), a patch is applied with
`git apply`, and the worktree is removed afterwards.
"""
from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from episodes.engine.git import patches
from episodes.engine.locks import file_lock

# The one commit of an agent's workspace: a fixed, neutral identity and date (2020-01-01).
TASK_TIME = 1577836800
TASK_GIT_ENV = {
    "GIT_AUTHOR_NAME": "BugForge", "GIT_AUTHOR_EMAIL": "task@bugforge.invalid", "GIT_AUTHOR_DATE": f"{TASK_TIME} +0000",
    "GIT_COMMITTER_NAME": "BugForge", "GIT_COMMITTER_EMAIL": "task@bugforge.invalid",
    "GIT_COMMITTER_DATE": f"{TASK_TIME} +0000",
}


class GitError(RuntimeError):
    """A git operation failed; the message carries git's own words."""


class PatchError(GitError):
    """A patch does not apply to the code it was meant for."""


def git(*args: str, cwd: Path | None = None, input: str | None = None, timeout: float = 300) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, input=input, capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {' '.join(args[:2])} timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise GitError(f"git {' '.join(args[:3])} failed: {(proc.stderr or proc.stdout).strip()[:2000]}")
    return proc.stdout


class WorkspaceFactory:
    """Mirrors under ``root/mirrors``, workspaces under ``root/workspaces``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.mirrors = self.root / "mirrors"
        self.workspaces = self.root / "workspaces"
        for d in (self.root, self.mirrors, self.workspaces):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)  # the sandbox's non-root uid must be able to reach workspaces

    def mirror_path(self, source: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", source.rstrip("/").rsplit("/", 1)[-1])[:40]
        return self.mirrors / f"{slug}-{hashlib.sha1(source.encode()).hexdigest()[:10]}.git"

    def ensure_mirror(self, source: str, commit: str) -> Path:
        """A bare mirror of ``source`` that contains ``commit`` (fetching only when missing;
        "": any commit)."""
        mirror = self.mirror_path(source)
        with file_lock(mirror.with_suffix(".lock")):
            if not mirror.exists():
                tmp = Path(tempfile.mkdtemp(dir=self.mirrors, prefix=".clone-"))
                try:
                    git("clone", "--mirror", "--quiet", source, str(tmp / "m.git"))
                    (tmp / "m.git").rename(mirror)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
            if commit and not self._has_commit(mirror, commit):
                git("fetch", "--quiet", "origin", "+refs/*:refs/*", cwd=mirror)
                if commit and not self._has_commit(mirror, commit):
                    raise GitError(f"commit {commit} not found in {source}")
        return mirror

    def resolve(self, source: str, ref: str = "") -> tuple[Path, str]:
        """(mirror, 40-hex commit) for ``ref`` — a branch, tag, commit (abbreviated or not) or ""
        for the default branch. A moving ref is fetched first, so it resolves to the commit it
        names now; the caller pins that commit, never the ref."""
        ref = ref.strip() or "HEAD"
        if re.fullmatch(r"[0-9a-f]{40}", ref):
            return self.ensure_mirror(source, ref), ref
        mirror = self.mirror_path(source)
        if mirror.exists():
            with file_lock(mirror.with_suffix(".lock")):
                git("fetch", "--quiet", "--prune", "origin", "+refs/*:refs/*", cwd=mirror)
        else:
            self.ensure_mirror(source, "")
        try:
            return mirror, git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=mirror).strip()
        except GitError:
            raise GitError(f"{ref!r} is not a branch, tag or commit of {source}") from None

    @staticmethod
    def _has_commit(mirror: Path, commit: str) -> bool:
        try:
            git("cat-file", "-e", f"{commit}^{{commit}}", cwd=mirror)
            return True
        except GitError:
            return False

    @contextlib.contextmanager
    def checkout(self, mirror: Path, commit: str, patch: str = "", reverse_patch: str = ""):
        """A fresh worktree at ``commit`` with ``patch`` applied (then ``reverse_patch``
        applied in reverse), removed on exit whatever happens inside."""
        path = Path(tempfile.mkdtemp(dir=self.workspaces, prefix="ws-"))
        with file_lock(mirror.with_suffix(".lock")):
            git("worktree", "add", "--detach", "--force", str(path), commit, cwd=mirror)
        try:
            if patch:
                apply_patch(path, patch)
            if reverse_patch:
                apply_patch(path, reverse_patch, reverse=True)
            yield path
        finally:
            self.remove(mirror, path)

    @contextlib.contextmanager
    def reusable(self, mirror: Path, commit: str):
        """One worktree at ``commit`` for many runs: each ``prepare(patch, reverse_patch)``
        resets it to the commit (the run's leftovers removed) and applies the patches again —
        a few git calls instead of a new worktree per run. Removed on exit."""
        checkout = ReusableCheckout(self, mirror, commit)
        try:
            yield checkout
        finally:
            checkout.close()

    @contextlib.contextmanager
    def task_checkout(self, mirror: Path, commit: str, patch: str = ""):
        """The workspace an agent gets: the buggy code (``patch`` on ``commit``) as a standalone
        git repository with exactly one commit — no history, remotes, tags, reflog or hooks, so
        nothing in it leads to the clean code — and one file time for every file, so the
        patched file is not the newest. ``git status``/``git diff`` show only the agent's own
        changes. Removed on exit."""
        path = Path(tempfile.mkdtemp(dir=self.workspaces, prefix="task-"))
        try:
            archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=mirror, capture_output=True,
                                     timeout=300)
            if archive.returncode != 0:
                raise GitError(f"git archive {commit} failed: {archive.stderr.decode(errors='replace')[:2000]}")
            subprocess.run(["tar", "-x", "-C", str(path)], input=archive.stdout, check=True, capture_output=True)
            env = {**os.environ, **TASK_GIT_ENV, "GIT_CONFIG_GLOBAL": "/dev/null"}

            def run_git(*args: str) -> None:
                proc = subprocess.run(["git", *args], cwd=path, env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise GitError(f"git {args[0]} failed: {(proc.stderr or proc.stdout).strip()[:2000]}")

            run_git("init", "-q", "-b", "main", "--template=")  # first: `git apply` then works here
            if patch:
                apply_patch(path, patch)
            for root, dirs, files in os.walk(path):
                dirs[:] = [d for d in dirs if not (root == str(path) and d == ".git")]
                for name in files + dirs:
                    os.utime(Path(root) / name, (TASK_TIME, TASK_TIME), follow_symlinks=False)
            run_git("add", "-A")
            run_git("commit", "-q", "--no-verify", "-m", "the code to fix")
            shutil.rmtree(path / ".git" / "logs", ignore_errors=True)  # the reflog
            (path / ".git" / "COMMIT_EDITMSG").unlink(missing_ok=True)
            run_git("config", "core.logAllRefUpdates", "false")
            os.utime(path, (TASK_TIME, TASK_TIME))
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def remove(self, mirror: Path, path: Path) -> None:
        with file_lock(mirror.with_suffix(".lock")):
            try:
                git("worktree", "remove", "--force", "--force", str(path), cwd=mirror)
            except GitError:  # already half gone: clean up by hand
                shutil.rmtree(path, ignore_errors=True)
                git("worktree", "prune", cwd=mirror)


class ReusableCheckout:
    """See ``WorkspaceFactory.reusable``. What a run changed is undone by ``git reset --hard``
    (tracked files: git compares ctime, which a run cannot set back) and ``git clean -ffdx``
    (new and ignored files: caches, reports); the worktree's ``.git`` link file is restored
    first so a run cannot point the reset at another repository. Any trouble resetting
    falls back to a new worktree."""

    def __init__(self, factory: WorkspaceFactory, mirror: Path, commit: str):
        self.factory, self.mirror, self.commit = factory, mirror, commit
        self.path: Path | None = None
        self.used = False

    def _create(self) -> None:
        self.path = Path(tempfile.mkdtemp(dir=self.factory.workspaces, prefix="ws-"))
        with file_lock(self.mirror.with_suffix(".lock")):
            git("worktree", "add", "--detach", "--force", str(self.path), self.commit, cwd=self.mirror)
        self.link = (self.path / ".git").read_bytes()
        self.used = False

    def _reset(self) -> None:
        link = self.path / ".git"
        if link.is_symlink() or link.is_dir() or not link.is_file() or link.read_bytes() != self.link:
            if link.is_dir() and not link.is_symlink():
                shutil.rmtree(link)
            else:
                link.unlink(missing_ok=True)
            link.write_bytes(self.link)
        git("reset", "--hard", "--quiet", self.commit, cwd=self.path)
        git("clean", "-ffdxq", cwd=self.path)

    def prepare(self, patch: str = "", reverse_patch: str = "") -> Path:
        """The worktree at the commit with ``patch`` applied (then ``reverse_patch`` reversed)."""
        if self.path is None:
            self._create()
        elif self.used:
            try:
                self._reset()
            except (GitError, OSError):
                self.close()
                self._create()
        self.used = True
        if patch:
            apply_patch(self.path, patch)
        if reverse_patch:
            apply_patch(self.path, reverse_patch, reverse=True)
        return self.path

    def close(self) -> None:
        if self.path is not None:
            self.factory.remove(self.mirror, self.path)
            self.path = None


def apply_patch(path: Path, patch: str, reverse: bool = False) -> None:
    if not patch.endswith("\n"):
        patch += "\n"
    args = ["apply", "--whitespace=nowarn"] + (["--reverse"] if reverse else [])
    try:  # all or nothing: git apply changes no file unless every hunk applies
        git(*args, "-", cwd=path, input=patch)
    except GitError as exc:
        raise PatchError(f"patch does not apply{' in reverse' if reverse else ''}: {exc}") from None


def unified_diff(path: str, before: str | None, after: str | None) -> str:
    """A ``git apply``-able diff of one file from ``before`` to ``after`` ("" if equal); None
    on a side means the file does not exist there (a new or a deleted file). The one diff
    writer: mutators, injectors and the grader (``reward.changes``) all write theirs here."""
    a = (before or "").splitlines(keepends=True)
    b = (after or "").splitlines(keepends=True)
    head = [f"diff --git a/{path} b/{path}\n"]
    if before is None:
        head.append("new file mode 100644\n")
    elif after is None:
        head.append("deleted file mode 100644\n")
    old_name = "/dev/null" if before is None else f"a/{path}"
    new_name = "/dev/null" if after is None else f"b/{path}"
    body = []
    for line in difflib.unified_diff(a, b, old_name, new_name, n=3):
        if line.startswith(("--- ", "+++ ")):
            line = line.rstrip() + "\n"  # difflib leaves an empty tab-separated date field
        elif not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        body.append(line)
    if not body and before is not None and after is not None:
        return ""
    return "".join(head + body)


def is_pristine(path: Path) -> bool:
    """No change at all against the checked-out commit (untracked files included)."""
    return git("status", "--porcelain", "--untracked-files=all", cwd=path).strip() == ""


def diff(path: Path) -> str:
    """Everything changed in the worktree, new files included, as a unified diff."""
    git("add", "-A", "--intent-to-add", ".", cwd=path)
    return git("diff", "--no-color", "--no-ext-diff", cwd=path)


def split_hunks(patch: str) -> list[str]:
    """The patch as a list of single-hunk patches (each with its file header)."""
    return [section.header + hunk for section in patches.parse(patch) for hunk in section.hunks]


def join_hunks(hunks: list[str]) -> str:
    """Inverse of split_hunks for any subset (hunks of one file share one header)."""
    out: list[str] = []
    last_header = None
    for hunk in hunks:
        for section in patches.parse(hunk):
            if section.header != last_header:
                out.append(section.header)
                last_header = section.header
            out.extend(section.hunks)
    return "".join(out)
