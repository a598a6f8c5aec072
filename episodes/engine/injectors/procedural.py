"""Procedural bug injection (no LLM): AST mutations of covered functions, each with a
verifier derived from the covering tests that the mutation breaks. Plain Python, no Django."""
from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import coverage_map
from ..mutators import Mutation, list_functions, mutations, sample
from ..validation import RepoSpec, Validator, pytest_verifier
from .llm_injector import problem_statement_from_failure

MIN_COMPLEXITY = 2  # skip trivial functions (getters, one-line wrappers)


@dataclass
class Target:
    path: str
    qualname: str
    covering_tests: list[str]


@dataclass
class Candidate:
    mutation: Mutation
    covering_tests: list[str]
    seed: int
    verifier: str = ""
    failing_tests: list[str] = field(default_factory=list)
    problem_statement: str = ""
    reject_reason: str = ""  # why it cannot become a bug (no covering test fails)
    reject_kind: str = ""
    seconds: float = 0.0

    @property
    def target(self) -> str:
        return f"{self.mutation.path}::{self.mutation.qualname}"


def covered_targets(sources: dict[str, str], coverage: dict, min_complexity: int = MIN_COMPLEXITY) -> list[Target]:
    """Functions executed by at least one passing test and above the complexity floor."""
    targets = []
    for path, source in sorted(sources.items()):
        for fn in list_functions(source, path):
            if fn.complexity < min_complexity:
                continue
            tests = coverage_map.tests_covering(coverage, path, fn.start_line, fn.end_line)
            if tests:
                targets.append(Target(path, fn.qualname, tests))
    return targets


def plan(
    sources: dict[str, str],
    coverage: dict,
    count: int,
    seed: int,
    *,
    operators: list[str] | None = None,
    known_patch_hashes: set[str] = frozenset(),
    hash_patch=None,
) -> list[Candidate]:
    """Up to ``count`` distinct mutations, spread over operators and functions by ``seed``;
    patches already known (by normalized hash) are skipped."""
    targets = covered_targets(sources, coverage)
    by_function = {(t.path, t.qualname): t for t in targets}
    pool: list[Mutation] = []
    for path in sorted({t.path for t in targets}):
        wanted = {t.qualname for t in targets if t.path == path}
        pool += mutations(sources[path], path, functions=wanted, operators=operators, min_complexity=MIN_COMPLEXITY)
    hash_patch = hash_patch or (lambda p: hashlib.sha256(p.encode()).hexdigest())
    seen = set(known_patch_hashes)
    unique = []
    for m in pool:
        h = hash_patch(m.patch)
        if h not in seen:
            seen.add(h)
            unique.append(m)
    rng = random.Random(seed)
    return [
        Candidate(m, by_function[(m.path, m.qualname)].covering_tests, seed=rng.randrange(2**31))
        for m in sample(unique, min(count, len(unique)), seed)
    ]


def derive_verifier(validator: Validator, repo: RepoSpec, candidate: Candidate) -> Candidate:
    """Run the covering tests on the mutated code; those that fail become the verifier."""
    start = time.perf_counter()
    with validator.workspaces.checkout(repo.mirror, repo.commit, patch=candidate.mutation.patch) as path:
        record = validator.run_suite(repo, path, "buggy", "injection", tests=candidate.covering_tests)
    candidate.failing_tests = sorted(t for t, s in record.tests.items() if s != "passed")
    if record.outcome == "timeout":
        candidate.reject_kind = "covering_tests_timeout"
        candidate.reject_reason = "the covering tests time out on the mutated code"
    elif not candidate.failing_tests:
        candidate.reject_kind = "equivalent_mutant"
        candidate.reject_reason = "no covering test fails on the mutated code (equivalent mutant)"
    else:
        candidate.verifier = pytest_verifier(candidate.failing_tests)
        candidate.problem_statement = problem_statement_from_failure(record.log_excerpt, candidate.mutation.qualname)
    candidate.seconds = time.perf_counter() - start
    return candidate


def read_sources(checkout: Path, coverage: dict) -> dict[str, str]:
    """The covered source files of a checkout, as text."""
    return {path: (checkout / path).read_text() for path in coverage.get("lines", {}) if (checkout / path).is_file()}
