"""History mode (no LLM): real bugs people once fixed. Take a past commit that changed both
source and tests, revert its source half on the pinned code; the tests it added or changed
that then fail become the verifier. Plain Python, no Django."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from episodes.engine.validate.validator import RepoSpec, Validator, pytest_verifier
from episodes.engine.git.workspace import PatchError, git
from episodes.engine.inject.issue_text import problem_statement_from_failure

TEST_PATH = re.compile(r"(^|/)(tests?/|test_[^/]*\.py$|[^/]*_test\.py$|conftest\.py$)")


def is_test_path(path: str) -> bool:
    return bool(TEST_PATH.search(path))


@dataclass
class HistoryCandidate:
    commit: str
    subject: str
    source_files: list[str]
    test_files: list[str]
    patch: str  # the commit's source change, reversed, as it applies to the pinned code
    verifier: str = ""
    failing_tests: list[str] = field(default_factory=list)
    problem_statement: str = ""
    reject_reason: str = ""


def find(mirror, pinned: str, limit: int, max_commits: int = 500) -> list[HistoryCandidate]:
    """Up to ``limit`` commits at or before ``pinned`` (newest first) that touched both
    Python source and tests; root commits are skipped (nothing to revert to)."""
    found = []
    for line in git("rev-list", "--no-merges", f"--max-count={max_commits}", "--format=%H %P", pinned, cwd=mirror).splitlines():
        if line.startswith("commit ") or not line.strip():
            continue
        sha, *parents = line.split()
        if len(parents) != 1:
            continue
        changed = git("diff", "--name-only", parents[0], sha, cwd=mirror).split()
        tests = [p for p in changed if p.endswith(".py") and is_test_path(p)]
        sources = [p for p in changed if p.endswith(".py") and not is_test_path(p)]
        if not (tests and sources):
            continue
        patch = git("diff", "--no-color", sha, parents[0], "--", *sources, cwd=mirror)
        if not patch.strip():
            continue
        subject = git("log", "-1", "--format=%s", sha, cwd=mirror).strip()
        found.append(HistoryCandidate(sha, subject, sources, tests, patch))
        if len(found) >= limit:
            break
    return found


def derive_verifier(validator: Validator, repo: RepoSpec, candidate: HistoryCandidate) -> HistoryCandidate:
    """Apply the reverted source half to the pinned code and run the commit's test files:
    the tests that now fail are the verifier."""
    try:
        with validator.workspaces.checkout(repo.mirror, repo.commit, patch=candidate.patch) as path:
            present = [t for t in candidate.test_files if (path / t).is_file()]
            if not present:
                candidate.reject_reason = "the commit's test files no longer exist at the pinned commit"
                return candidate
            record = validator.run_suite(repo, path, "buggy", "injection", tests=present)
    except PatchError as exc:
        candidate.reject_reason = f"the reverted change does not apply to the pinned commit: {exc}"
        return candidate
    candidate.failing_tests = sorted(t for t, s in record.tests.items() if s != "passed")
    if not candidate.failing_tests:
        candidate.reject_reason = "no test of the commit fails once its source change is reverted"
        return candidate
    candidate.verifier = pytest_verifier(candidate.failing_tests)
    qualname = candidate.source_files[0]
    candidate.problem_statement = problem_statement_from_failure(record.log_excerpt, qualname)
    return candidate
