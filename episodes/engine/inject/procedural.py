"""Procedural bug injection (no LLM): AST mutations of lines the passing tests execute (in
functions above a complexity floor), each with a verifier derived from the covering tests
that the mutation breaks. Plain Python, no Django."""
from __future__ import annotations

import functools
import hashlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from episodes.engine.validate import coverage_map
from episodes.engine.inject.mutators import Mutation, list_functions, mutations, realism, spread
from episodes.engine.validate.validator import RepoSpec, Validator, pytest_verifier
from episodes.engine.inject.issue_text import problem_statement_from_failure

MIN_COMPLEXITY = 2  # skip trivial functions (getters, one-line wrappers)
MIN_REALISM = 0.5  # below: a change no person writes (TypeError operators, NameErrors, `return None` stubs)
MAX_PER_FUNCTION = 2  # spread a batch over the codebase (0: no cap)


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
    realism: float | None = None
    realism_notes: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"{self.mutation.path}::{self.mutation.qualname}"


@dataclass
class Target:
    path: str
    qualname: str
    covering_tests: list[str]


def covered_targets(sources: dict[str, str], coverage: dict, min_complexity: int = MIN_COMPLEXITY) -> list[Target]:
    """Functions executed by at least one passing test and above the complexity floor."""
    targets = []
    for path, source in sorted(sources.items()):
        for fn in list_functions(source, path):
            tests = coverage_map.tests_covering(coverage, path, fn.start_line, fn.end_line)
            if fn.complexity >= min_complexity and tests:
                targets.append(Target(path, fn.qualname, tests))
    return targets


@functools.lru_cache(maxsize=256)
def _all_mutations(source: str, path: str, operators: tuple[str, ...] | None) -> tuple[Mutation, ...]:
    """Every mutation of one file (cached: a worker plans many batches over the same commit)."""
    return tuple(mutations(source, path, operators=list(operators) if operators else None, min_complexity=MIN_COMPLEXITY))


def plan(
    sources: dict[str, str],
    coverage: dict,
    count: int,
    seed: int,
    *,
    operators: list[str] | None = None,
    known_patch_hashes: set[str] = frozenset(),
    hash_patch=None,
    stats: dict | None = None,
    min_realism: float = MIN_REALISM,
    max_per_function: int = MAX_PER_FUNCTION,
) -> list[Candidate]:
    """Up to ``count`` distinct mutations of lines that passing tests execute, spread over
    operators and functions by ``seed``; patches already known (by normalized hash) are
    skipped. A mutation's covering tests are those that execute its very line. ``stats``
    (when given) gets the counts that say why there are fewer (``shortfall``). Mutations scoring
    below ``min_realism`` (``realism.score``; 0 keeps all) are left out, and at most
    ``max_per_function`` candidates (0: no cap) come from one function."""
    hash_patch = hash_patch or (lambda p: hashlib.sha256(p.encode()).hexdigest())
    seen = set(known_patch_hashes)
    covered: list[Mutation] = []
    covering: dict[int, list[str]] = {}
    counts = {"files": len(sources), "mutations": 0, "uncovered": 0, "duplicates": 0, "unrealistic": 0, "capped": 0}
    for path, source in sorted(sources.items()):
        for m in _all_mutations(source, path, tuple(operators) if operators else None):
            counts["mutations"] += 1
            tests = coverage_map.tests_covering(coverage, path, m.line, m.line)
            h = hash_patch(m.patch)
            if not tests:
                counts["uncovered"] += 1
            elif h in seen:
                counts["duplicates"] += 1
            else:
                seen.add(h)
                covering[id(m)] = tests
                covered.append(m)
    # Walk the seeded spread order lazily, scoring and capping as we go: a large library has tens
    # of thousands of mutations, and only about ``count`` of them need a realism score.
    picked, scores, per_function = [], {}, {}
    for m in spread(covered, seed):
        if len(picked) >= count:
            break
        key = (m.path, m.qualname)
        if max_per_function and per_function.get(key, 0) >= max_per_function:
            counts["capped"] += 1
            continue
        scored = realism.score(m)
        if scored.score < min_realism:
            counts["unrealistic"] += 1
            continue
        scores[id(m)] = scored
        per_function[key] = per_function.get(key, 0) + 1
        picked.append(m)
    if stats is not None:
        stats.update(counts)
    rng = random.Random(seed)
    return [Candidate(m, covering[id(m)], seed=rng.randrange(2**31), realism=scores[id(m)].score,
                      realism_notes=scores[id(m)].notes) for m in picked]


def shortfall(stats: dict, requested: int, planned: int, operators: list[str] | None = None) -> str:
    """Why a plan has fewer candidates than asked ("" when it has them all)."""
    if planned >= requested:
        return ""
    got = f"{planned} of {requested} candidate(s)"
    if not stats.get("files"):
        return f"{got}: the coverage map has no source file (run the baseline again and read its report)"
    if not stats.get("mutations"):
        ops = f" with the operators {', '.join(operators)}" if operators else ""
        return (f"{got}: no mutation{ops} in the {stats['files']} covered file(s) — no function reaches the "
                f"complexity floor ({MIN_COMPLEXITY} branches), or the operators apply nowhere")
    unrealistic, capped = stats.get("unrealistic", 0), stats.get("capped", 0)
    usable = stats["mutations"] - stats["uncovered"] - stats["duplicates"] - unrealistic - capped
    return (f"{got}: of {stats['mutations']} possible mutation(s) in {stats['files']} covered file(s), "
            f"{stats['uncovered']} are on lines no passing test executes and {stats['duplicates']} are bugs "
            f"this repository already has, {unrealistic} score below the realism threshold and {capped} are over "
            f"the per-function cap; {usable} remain")


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
        # not "equivalent": the mutant may well change behaviour the tests do not check
        candidate.reject_kind = "undetected_mutant"
        candidate.reject_reason = ("no covering test fails on the mutated code: an equivalent mutant, or a "
                                   "behaviour change the tests do not check")
    else:
        candidate.verifier = pytest_verifier(candidate.failing_tests)
        candidate.problem_statement = problem_statement_from_failure(record.log_excerpt, candidate.mutation.qualname,
                                                                     candidate.mutation.path)
    candidate.seconds = time.perf_counter() - start
    return candidate


def read_sources(checkout: Path, coverage: dict) -> dict[str, str]:
    """The covered source files of a checkout, as text."""
    return {path: (checkout / path).read_text() for path in coverage.get("lines", {}) if (checkout / path).is_file()}
