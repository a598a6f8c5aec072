"""Which of the agent's changes count, as a patch against the buggy code (plain Python, no Django).

See the package docstring for what is dropped and why; the agent's workspace is never trusted
as a git repository: its change is found by comparing its files with the pristine checkout,
byte for byte."""
from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from episodes.engine.git import patches
from episodes.engine.git.workspace import unified_diff as file_diff  # the one diff writer (re-exported under its old name here)

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


def split_patch(patch: str) -> list[tuple[set[str], str]]:
    """A multi-file patch (git-style or plain unified) as [(paths it touches, its text)],
    one entry per file section (``engine.git.patches``: hunk bodies are read by their line
    counts, so a removed line that happens to start with "--" is never taken for a new file
    header). ``MalformedPatch`` when it is not a readable diff."""
    return [(f.paths, f.text) for f in patches.parse(patch)]


def patch_changes(pristine: Path, patch: str) -> tuple[dict[str, str], dict[str, str]]:
    """Like ``workspace_changes`` for a patch: its file sections kept or dropped by path."""
    diffs: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for section in patches.parse(patch):
        paths, text = section.paths, section.text
        if not paths:
            continue
        key = sorted(paths)[-1]
        text = text if text.endswith("\n") else text + "\n"
        why = next((r for r in map(excluded_reason, sorted(paths)) if r), "")
        if not why:
            new = [p for p in paths if not (pristine / p).exists()]
            why = next((r for r in (_new_file_reason(pristine, p) for p in new) if r), "")
        if not why and (section.parsed.is_binary_file or section.parsed.is_symlink):
            why = "not a regular UTF-8 text file (binary, symlink, special or over 2 MB)"
        if why:
            for p in paths:
                dropped[p] = why
        else:
            diffs[key] = diffs.get(key, "") + text
    return diffs, dropped


def diff_lines(file_patch: str, side: str = "new") -> set[int]:
    """Line numbers a one-file unified diff touches: on the ``new`` side the lines it adds, on
    the ``old`` side the lines it removes or changes."""
    return set().union(*(patches.changed_lines(f, side) for f in patches.parse(file_patch)))
