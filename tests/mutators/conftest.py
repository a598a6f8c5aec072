"""Helpers for the mutation-engine tests: plain functions, no database."""
from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import pytest

from episodes.engine.inject.mutators import Mutation


@pytest.fixture(scope="session")
def git_repo(tmp_path_factory) -> Path:
    """An empty git repository to apply patches in."""
    repo = tmp_path_factory.mktemp("mutants")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


@pytest.fixture
def roundtrip(git_repo):
    """Check that a mutation's patch applies to the original with ``git apply`` and reverses with ``-R``."""

    def check(mutation: Mutation) -> None:
        target = git_repo / mutation.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(mutation.original)
        patch = git_repo / "change.patch"
        patch.write_text(mutation.patch)
        subprocess.run(["git", "apply", "--check", str(patch)], cwd=git_repo, check=True, capture_output=True)
        subprocess.run(["git", "apply", str(patch)], cwd=git_repo, check=True, capture_output=True)
        assert target.read_text() == mutation.mutated
        subprocess.run(["git", "apply", "-R", str(patch)], cwd=git_repo, check=True, capture_output=True)
        assert target.read_text() == mutation.original
        target.unlink()

    return check


def hunks(mutation: Mutation) -> int:
    """Changed hunks between original and mutated (adjacent changes within 3 lines form one)."""
    diff = difflib.unified_diff(mutation.original.splitlines(), mutation.mutated.splitlines(), n=3, lineterm="")
    return sum(1 for line in diff if line.startswith("@@"))


def assert_well_formed(mutation: Mutation) -> None:
    compile(mutation.mutated, mutation.path, "exec")
    assert mutation.mutated != mutation.original
    assert hunks(mutation) == 1, mutation.patch
    path = mutation.path
    assert mutation.patch.startswith(f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ ")
