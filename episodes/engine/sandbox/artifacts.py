"""What an install step builds (a C extension's .so, a generated module), kept in the environment.

The repository's own code always comes from the run's workspace, never from the environment.
But a build step's outputs are not in git, so a fresh workspace lacks them: they are collected
from the build copy (files new or changed against the source) into the environment, and a
finder appended to ``sys.meta_path`` (after the normal finders, so the workspace always wins)
serves a *submodule* of a workspace package from there. Top-level names are never served, so
the environment-leak check (the package importable from an empty folder) still holds.
"""
from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

SKIP_DIRS = {".git", "__pycache__", "build", "dist", ".eggs", ".bugforge"}
FOLDER = "bugforge-artifacts"

FINDER = '''\
"""BugForge: serve build outputs (see episodes/engine/sandbox/artifacts.py) for workspace packages."""
import importlib.machinery, importlib.util, os, sys

ROOT = {root!r}
SUFFIXES = importlib.machinery.EXTENSION_SUFFIXES + [".py"]


class ArtifactFinder:
    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if "." not in fullname:
            return None  # never a top-level name: the package itself comes from the workspace
        base = os.path.join(ROOT, *fullname.split("."))
        for suffix in SUFFIXES:
            if os.path.isfile(base + suffix):
                return importlib.util.spec_from_file_location(fullname, base + suffix)
        return None


sys.meta_path.append(ArtifactFinder)
'''


def collect(source: Path, built: Path, dest: Path) -> list[str]:
    """Copy files of ``built`` that are new or changed against ``source`` into ``dest``."""
    found = []
    for dirpath, dirnames, filenames in os.walk(built):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(built)
            original = source / rel
            if path.is_symlink() or name.endswith(".pyc"):
                continue
            if original.is_file() and filecmp.cmp(original, path, shallow=False):
                continue
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / rel)
            found.append(str(rel))
    return sorted(found)


def install_finder(site_packages: Path, root: str) -> None:
    """The finder module and the .pth that loads it at interpreter start-up."""
    (site_packages / "bugforge_artifacts.py").write_text(FINDER.format(root=root))
    (site_packages / "bugforge_artifacts.pth").write_text("import bugforge_artifacts\n")
