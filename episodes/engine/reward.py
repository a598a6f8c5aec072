"""The reward: does the agent's change to the source code fix the bug? (plain Python, no Django)

Nothing the agent touched decides it. Only the agent's changes to non-test source files
count; they are applied to a pristine checkout of the buggy code (the bug record's patch on
the pinned commit), where the verifier, the repository's tests and every test configuration
are the bug record's own; then the verifier and the bug's FAIL_TO_PASS and PASS_TO_PASS tests
run in the sandbox, each in a fresh checkout. Reward is True only when the verifier exits 0
and every one of those tests is reported as passed (a test missing from the JUnit report, or
skipped, counts as not passed)::

    from episodes.engine.reward import grade

    result = grade(
        executor, workspaces, repo_spec, BugSpec(patch=bug.patch, verifier=bug.verifier),
        fail_to_pass=bug.fail_to_pass, pass_to_pass=bug.pass_to_pass,
        workspace=agent_workspace,      # the agent's final checkout; or patch="diff --git ..."
        limits=Limits(timeout_s=120),
    )
    result.reward         # True / False
    result.reason         # one line saying why
    result.patch          # the filtered source patch that was graded
    result.dropped        # {path: why it was not graded} (tests, conftest.py, *.pth, ...)
    result.runs           # [RunRecord] of the verifier and test runs
    result.to_dict()      # JSON-ready, for Episode.grading

What is dropped from the agent's change (and why, in ``dropped``): test files and folders
(``test_*.py``, ``*_test.py``, ``tests.py``, anything under ``tests/``, ``test/`` or ``testing/``,
any file holding one of the bug's FAIL_TO_PASS/PASS_TO_PASS tests),
``conftest.py``, ``sitecustomize.py``, ``usercustomize.py``, ``*.pth``, test-runner and
packaging configuration (``pytest.ini``, ``tox.ini``, ``setup.cfg``, ``pyproject.toml``,
``noxfile.py``, ``.coveragerc``), the verifier's folder ``.bugforge/``, new files outside an
existing package folder (a new ``pytest.py`` at the root would shadow the real one), binary
files and symlinks. A source change that reaches into the test runner itself (``pytest``,
``_pytest``, ``os._exit``) is refused outright with reward False: a bug fix has no business
there, and code run by the tests could otherwise fake their results.

The agent's workspace is never trusted as a git repository (it may have rewritten ``.git``):
its change is found by comparing its files with the pristine checkout, byte for byte.
"""
from __future__ import annotations

import difflib
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from .sandbox.base import Executor, Limits
from .validation import BugSpec, RepoSpec, RunRecord, Validator
from .workspace import PatchError, WorkspaceFactory, apply_patch

TEST_DIRS = {"test", "tests", "testing"}
CONFIG_FILES = {
    "conftest.py", "sitecustomize.py", "usercustomize.py", "pytest.ini", "tox.ini", "setup.cfg",
    "pyproject.toml", "noxfile.py", ".coveragerc",
}
# never compared at all: version control, caches, the grader's own folder
IGNORED_DIRS = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"}
IGNORED_SUFFIXES = (".pyc", ".pyo")
VERIFIER_DIR = ".bugforge"
MAX_FILE_BYTES = 2_000_000
TAMPERING = re.compile(r"\b_?pytest\b|\bos\._exit\b")


@dataclass
class Grade:
    reward: bool
    reason: str
    patch: str = ""  # the filtered patch that was graded (buggy → agent, source files only)
    dropped: dict[str, str] = field(default_factory=dict)  # path → why it was left out
    runs: list[RunRecord] = field(default_factory=list)
    tests: dict[str, str] = field(default_factory=dict)  # F2P/P2P test id → status

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
        }


# --- which paths count ---------------------------------------------------------------------


def excluded_reason(path: str) -> str:
    """Why a changed path does not count as a source change ("" when it counts)."""
    parts = PurePosixPath(path).parts
    name = parts[-1] if parts else path
    if not parts or PurePosixPath(path).is_absolute() or any(p in ("..", "") for p in parts):
        return "not a path inside the repository"
    if parts[0] == VERIFIER_DIR:
        return "the verifier's folder"
    if any(p in IGNORED_DIRS for p in parts):
        return "cache or version-control folder"
    if any(p in TEST_DIRS for p in parts[:-1]):
        return "test folder"
    if name in CONFIG_FILES:
        return "test or packaging configuration"
    if name.endswith(".pth"):
        return "*.pth file (runs code at interpreter start-up)"
    if name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py") or name in ("tests.py", "test.py")):
        return "test file"
    if name.endswith(IGNORED_SUFFIXES):
        return "compiled Python file"
    return ""


# --- the agent's change as a patch ----------------------------------------------------------


def _files(root: Path) -> dict[str, Path]:
    """Every file under ``root`` by relative POSIX path; symlinks (to directories too) are
    listed, never followed."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        links = [d for d in dirnames if (here / d).is_symlink()]
        dirnames[:] = [d for d in dirnames if d not in IGNORED_DIRS and d not in links]
        for name in filenames + links:
            rel = (here / name).relative_to(root).as_posix()
            if rel != ".git" and not name.endswith(IGNORED_SUFFIXES):  # a worktree's .git is a file
                found[rel] = here / name
    return found


def _is_regular(path: Path) -> bool:
    return stat.S_ISREG(path.lstat().st_mode)


def _same(a: Path, b: Path) -> bool:
    if a.is_symlink() or b.is_symlink():
        return a.is_symlink() and b.is_symlink() and os.readlink(a) == os.readlink(b)
    if not (_is_regular(a) and _is_regular(b)):
        return False  # a FIFO or a device must not be read (it could block forever)
    return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()


def _text(path: Path) -> str | None:
    """The file's text, or None for a symlink, a special, binary, huge or non-UTF-8 file."""
    if not _is_regular(path) or path.stat().st_size > MAX_FILE_BYTES:
        return None
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def file_diff(path: str, before: str | None, after: str | None) -> str:
    """A ``git apply``-able diff of one file; ``None`` on a side means it does not exist."""
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


def workspace_changes(pristine: Path, workspace: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(source file diffs by path, dropped paths → why) from ``pristine`` to ``workspace``."""
    old, new = _files(pristine), _files(workspace)
    diffs: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for rel in sorted(set(old) | set(new)):
        a, b = old.get(rel), new.get(rel)
        if a is not None and b is not None and _same(a, b):
            continue
        why = excluded_reason(rel)
        if not why and a is None:
            why = _new_file_reason(pristine, rel)
        before = _text(a) if a is not None else None
        after = _text(b) if b is not None else None
        if not why and ((a is not None and before is None) or (b is not None and after is None)):
            why = "not a regular UTF-8 text file (binary, symlink, special or over 2 MB)"
        if why:
            dropped[rel] = why
            continue
        text = file_diff(rel, before, after)
        if text:
            diffs[rel] = text
    return diffs, dropped


def _new_file_reason(pristine: Path, rel: str) -> str:
    parent = PurePosixPath(rel).parent
    if str(parent) == ".":
        return "new file at the repository root (it could shadow a module)"
    if not (pristine / parent).is_dir() or (pristine / parent).is_symlink():
        return "new file outside an existing folder"
    return ""


_DIFF_HEADER = re.compile(r"^diff --git a/(.+?) b/(.+?)\s*$")
_HUNK_HEADER = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")


def split_patch(patch: str) -> list[tuple[set[str], str]]:
    """A multi-file patch (git-style or plain unified) as [(paths it touches, its text)],
    one entry per file section. Hunk bodies are consumed by their line counts, so a removed
    line that happens to start with "--" is never taken for a new file header."""
    sections: list[list[str]] = []
    in_hunks = False
    old_left = new_left = 0
    for line in patch.splitlines(keepends=True):
        if old_left > 0 or new_left > 0:
            sections[-1].append(line)
            tag = line[:1]
            if tag in (" ", "\n", "\r", ""):
                old_left, new_left = old_left - 1, new_left - 1
            elif tag == "-":
                old_left -= 1
            elif tag == "+":
                new_left -= 1
            continue
        if line.startswith("diff --git ") or (line.startswith("--- ") and (not sections or in_hunks)):
            sections.append([line])
            in_hunks = False
        elif sections and (m := _HUNK_HEADER.match(line)):
            sections[-1].append(line)
            in_hunks = True
            old_left = int(m.group(1)) if m.group(1) is not None else 1
            new_left = int(m.group(2)) if m.group(2) is not None else 1
        elif sections:
            sections[-1].append(line)
    out = []
    for lines in sections:
        paths: set[str] = set()
        m = _DIFF_HEADER.match(lines[0])
        if m:
            paths |= {m.group(1), m.group(2)}
        for line in lines:
            if line.startswith("@@"):
                break
            if line.startswith(("--- ", "+++ ")):
                name = line[4:].rstrip("\n").split("\t")[0].strip()
                if name != "/dev/null":
                    paths.add(name[2:] if name[:2] in ("a/", "b/") else name)
            elif line.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
                paths.add(line.rstrip("\n").split(" ", 2)[2].strip())
        out.append((paths, "".join(lines)))
    return out


def patch_changes(pristine: Path, patch: str) -> tuple[dict[str, str], dict[str, str]]:
    """Like ``workspace_changes`` for a patch: its file sections kept or dropped by path."""
    diffs: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for paths, text in split_patch(patch):
        if not paths:
            continue
        key = sorted(paths)[-1]
        text = text if text.endswith("\n") else text + "\n"
        why = next((r for r in map(excluded_reason, sorted(paths)) if r), "")
        if not why:
            new = [p for p in paths if not (pristine / p).exists()]
            why = next((r for r in (_new_file_reason(pristine, p) for p in new) if r), "")
        if not why and ("GIT binary patch" in text or "Binary files " in text or "new file mode 120000" in text):
            why = "not a regular UTF-8 text file (binary, symlink, special or over 2 MB)"
        if why:
            for p in paths:
                dropped[p] = why
        else:
            diffs[key] = diffs.get(key, "") + text
    return diffs, dropped


def tampering(patch: str) -> list[str]:
    """Added lines of a source patch that reach into the test runner (see the module doc);
    comment lines do not count (a fix may well say "pytest" in a comment)."""
    return [
        line[1:].strip()
        for line in patch.splitlines()
        if line.startswith("+") and not line.startswith("+++") and not line[1:].lstrip().startswith("#")
        and TAMPERING.search(line)
    ]


# --- grading --------------------------------------------------------------------------------


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
    validator = Validator(executor, workspaces, limits, reruns=1, on_run=on_run)
    tests = list(dict.fromkeys([*fail_to_pass, *pass_to_pass]))

    with workspaces.checkout(repo.mirror, repo.commit, patch=bug.patch) as pristine:
        if workspace is not None:
            diffs, dropped = workspace_changes(pristine, Path(workspace))
        else:
            diffs, dropped = patch_changes(pristine, patch)
        for path in {t.split("::")[0] for t in tests} & set(diffs):  # wherever the bug's tests live
            del diffs[path]
            dropped[path] = "a file of the bug's FAIL_TO_PASS/PASS_TO_PASS tests"
        source_patch = "".join(diffs[k] for k in sorted(diffs))
        result = Grade(reward=False, reason="", patch=source_patch, dropped=dropped)
        if not source_patch:
            result.reason = "no change to a source file" + (f" ({len(dropped)} other path(s) ignored)" if dropped else "")
            return result
        suspicious = tampering(source_patch)
        if suspicious:
            result.reason = f"the source change reaches into the test runner: {suspicious[0][:200]}"
            return result
        try:
            apply_patch(pristine, source_patch)
        except PatchError as exc:
            result.reason = f"the source patch does not apply to the buggy code: {exc}"
            return result
        verifier = validator.run_verifier(repo, bug.verifier, pristine, "candidate", "grading")
    result.runs.append(verifier)

    suite = None
    if tests and (verifier.outcome == "passed" or run_suite_after_failed_verifier):
        # a fresh checkout: whatever the verifier run left behind must not reach the tests
        with workspaces.checkout(repo.mirror, repo.commit, patch=bug.patch) as fresh:
            apply_patch(fresh, source_patch)
            suite = validator.run_suite(repo, fresh, "candidate", "grading", tests=tests)
        result.runs.append(suite)
        result.tests = {t: suite.tests.get(t, "missing") for t in tests}

    not_passed = {t: s for t, s in result.tests.items() if s != "passed"}
    f2p = [t for t in fail_to_pass if t in not_passed]
    if verifier.outcome != "passed":
        exit_text = f"exit {verifier.exit_code}" if verifier.outcome == "failed" else verifier.outcome
        result.reason = f"the verifier did not pass ({exit_text})"
        if not_passed:
            result.reason += f"; {len(not_passed)} of {len(tests)} tests did not pass"
    elif suite is not None and (not_passed or suite.outcome != "passed"):
        listed = ", ".join(f"{t} ({s})" for t, s in list(not_passed.items())[:5])
        result.reason = (
            f"{len(not_passed)} of {len(tests)} tests did not pass ({len(f2p)} FAIL_TO_PASS): {listed}"
            if not_passed else f"the test run ended as {suite.outcome} (exit {suite.exit_code})"
        )
    else:
        result.reward = True
        result.reason = (
            f"the verifier and all {len(tests)} FAIL_TO_PASS/PASS_TO_PASS tests pass" if tests
            else "the verifier passes (the bug has no FAIL_TO_PASS/PASS_TO_PASS tests recorded)"
        )
    return result
