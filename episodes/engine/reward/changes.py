"""Which of the agent's changes count, as a patch against the buggy code (plain Python, no Django).

See the package docstring for what is dropped and why; the agent's workspace is never trusted
as a git repository: its change is found by comparing its files with the pristine checkout,
byte for byte."""
from __future__ import annotations

import difflib
import os
import re
import stat
from pathlib import Path, PurePosixPath

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


_HUNK_START = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def diff_lines(file_patch: str, side: str = "new") -> set[int]:
    """Line numbers a one-file unified diff touches: on the ``new`` side the lines it adds, on
    the ``old`` side the lines it removes or changes."""
    mark, group = ("+", 2) if side == "new" else ("-", 1)
    lines: set[int] = set()
    at = 0
    for line in file_patch.splitlines():
        m = _HUNK_START.match(line)
        if m:
            at = int(m.group(group))
        elif at and line.startswith(mark) and not line.startswith(mark * 3):
            lines.add(at)
            at += 1
        elif at and (line.startswith(" ") or line == ""):
            at += 1
    return lines
