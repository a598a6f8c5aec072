"""What an install step builds (a C extension's .so, a generated module), kept in the environment.

The repository's own code always comes from the run's workspace, never from the environment.
But a build step's outputs are not in git, so a fresh workspace lacks them: they are collected
from the build copy (files new or changed against the source) into the environment, and a
finder appended to ``sys.meta_path`` (after the normal finders, so the workspace always wins)
serves a *submodule* of a workspace package from there. Top-level names are never served, so
the environment-leak check (the package importable from an empty folder) still holds.
"""
from __future__ import annotations

import importlib.machinery
import os
import shutil
from pathlib import Path

SKIP_DIRS = {".git", "__pycache__", "build", "dist", ".eggs", ".bugforge"}
FOLDER = "bugforge-artifacts"

FINDER = '''\
"""BugForge: serve build outputs (see episodes/engine/sandbox/artifacts.py) for workspace packages."""
import importlib.machinery, importlib.util, os, sys

ROOT = {root!r}
LAYOUTS = ("", "src")  # packages at the repository root or under src/ (as own_packages sees them)
SUFFIXES = importlib.machinery.EXTENSION_SUFFIXES + [".py"]


class ArtifactFinder:
    # Consulted only after the normal finders missed (appended last), so a file in the
    # workspace always wins; the install step's outputs are not in git, hence not there.
    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if "." not in fullname:
            return None  # never a top-level name: the package itself comes from the workspace
        # a submodule of a package already imported (from the workspace): <ROOT>/a/b/c.<suffix>
        for layout in LAYOUTS:
            base = os.path.join(ROOT, layout, *fullname.split("."))
            for suffix in SUFFIXES:
                if os.path.isfile(base + suffix):  # the suffix picks the loader (extension/source)
                    return importlib.util.spec_from_file_location(fullname, base + suffix)
        return None


sys.meta_path.append(ArtifactFinder)
'''


MODULE_SUFFIXES = (*importlib.machinery.EXTENSION_SUFFIXES, ".py")


def collect(source: Path, built: Path, dest: Path) -> list[str]:
    """Copy the importable files (modules, extensions) of ``built`` (the install step's copy of
    ``source``) that ``source`` does not have into ``dest``; return their relative paths.
    Only new modules: the finder serves nothing else, and a tracked file the build rewrote
    would put a copy of clean source where an agent can read it. Version control, caches and
    packaging leftovers (build/, dist/, *.egg-info, .eggs) are not kept."""
    found = []
    for dirpath, dirnames, filenames in os.walk(built):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(built)
            original = source / rel
            # plain files only: the step is untrusted (a link could point anywhere, a fifo blocks)
            if path.is_symlink() or not path.is_file() or not name.endswith(MODULE_SUFFIXES):
                continue
            if os.path.lexists(original):
                continue
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / rel)
            # readable by all, never setuid/setgid: the copy is made as root
            os.chmod(dest / rel, (path.stat().st_mode & 0o755) | 0o644)
            found.append(str(rel))
    return sorted(found)


def install_finder(site_packages: Path, root: str) -> None:
    """The finder module (serving ``root``, the artifacts' path as the sandbox sees it) and
    the .pth that loads it at interpreter start-up, written into ``site_packages``."""
    site_packages.mkdir(parents=True, exist_ok=True)
    (site_packages / "bugforge_artifacts.py").write_text(FINDER.format(root=root))
    (site_packages / "bugforge_artifacts.pth").write_text("import bugforge_artifacts\n")
