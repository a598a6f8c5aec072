"""Procedural injection throughput on the sample repository with the local sandbox.

Plans N candidates (mutations of covered lines), derives each verifier in the sandbox, and
validates every usable candidate (verifier runs, suite, reverse patch, flakiness reruns).
Prints candidates generated per second, valid bugs per hour, the yield per operator, and —
as the baseline measured in the same run — the time of one plain `pytest` run of the suite,
so the per-candidate cost can be read in suite runs.

    .venv/bin/python bench/injection_throughput.py [--count 30] [--flake-target 0.05] [--workers 2] [--seed 1]
"""
from __future__ import annotations

import argparse
import collections
import subprocess
import time

from sample_setup import sample_setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--flake-target", type=float, default=0.05, help="stop rule target (59 runs a side at 5%%)")
    parser.add_argument("--workers", type=int, default=2, help="parallel verifier runs of one bug")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from episodes.engine.validate import coverage_map
    from episodes.engine.validate.flakiness import StopRule
    from episodes.engine.inject import procedural
    from episodes.engine.sandbox import Limits
    from episodes.engine.validate.validator import BugSpec, RepoSpec, Validator

    sample = sample_setup("local", pip_packages=(coverage_map.COVERAGE_PACKAGE,))
    src, commit, factory, executor = sample.src, sample.commit, sample.workspaces, sample.executor
    mirror, environment = sample.mirror, sample.environment
    try:
        repo = RepoSpec(mirror=mirror, commit=commit, environment=environment)
        validator = Validator(executor, factory, Limits(timeout_s=30), flake=StopRule(target=args.flake_target),
                              workers=args.workers)
        record, coverage = validator.baseline(repo)
        repo.baseline = {t: {"status": s} for t, s in record.tests.items()}

        # Baseline of the same run: one plain pytest of the suite, no sandbox.
        python = executor.environment_path(environment) / "bin" / "python"
        t0 = time.perf_counter()
        subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=src, capture_output=True)
        suite_s = time.perf_counter() - t0

        with factory.checkout(mirror, commit) as checkout:
            sources = procedural.read_sources(checkout, coverage)
        t0 = time.perf_counter()
        candidates = procedural.plan(sources, coverage, args.count, args.seed)
        plan_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for candidate in candidates:
            procedural.derive_verifier(validator, repo, candidate)
        derive_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        per_op = collections.defaultdict(lambda: [0, 0])
        statuses = collections.Counter()
        for candidate in candidates:
            per_op[candidate.mutation.operator][0] += 1
            if candidate.reject_reason:
                statuses["invalid"] += 1
                continue
            verdict = validator.validate(repo, BugSpec(candidate.mutation.patch, candidate.verifier), seed=candidate.seed)
            statuses[verdict.status] += 1
            per_op[candidate.mutation.operator][1] += verdict.status == "valid"
        validate_s = time.perf_counter() - t0

        total = plan_s + derive_s + validate_s
        n = len(candidates)
        print(f"candidates           {n} ({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))})")
        print(f"plan                 {plan_s:8.2f} s")
        print(f"derive verifiers     {derive_s:8.2f} s")
        print(f"validate             {validate_s:8.2f} s  (stable at < {args.flake_target:.0%}: up to "
              f"{StopRule(target=args.flake_target).needed} verifier runs a side, {args.workers} worker(s))")
        print(f"candidates / second  {n / (plan_s + derive_s):8.2f}  (generated, before validation)")
        print(f"valid bugs / hour    {statuses['valid'] / total * 3600:8.0f}  (one worker, everything included)")
        print(f"plain suite run      {suite_s:8.2f} s  (baseline: a candidate costs "
              f"{total / n / suite_s:.1f} suite runs)")
        print("yield per operator:")
        for op, (cands, valid) in sorted(per_op.items()):
            print(f"    {op:<22} {valid:>3}/{cands:<3} {valid / cands:5.0%}")
    finally:
        sample.close()


if __name__ == "__main__":
    main()
