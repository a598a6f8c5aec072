"""Does validation catch flaky verifiers, and what does a stable bug cost?

Validates the sample repository's boundary bug through the real engine and sandbox with a
fast verifier that fails on clean code on a known share of runs (10% and 5%: the run's seed
decides), and with a steady one; counts how often the flaky ones are caught (recall), whether
any steady one is flagged, and the verifier runs per stable bug against the runs the bound
needs. The baseline, measured in the same run the same way, is the old fixed rule: 5 runs a
side (what "< 45% at 95%" came from). A simulation of the same stop rule on coin flips
(many more trials, no sandbox) gives the recall to more digits.

    .venv/bin/python bench/flake_recall.py [--trials 20] [--stable 5] [--target 0.05] [--workers 2]

Targets (issue 12): recall ≥ 95% at a 10% flake rate, 0 stable bugs flagged, runs per stable
bug = what the bound needs (2 × 59 at 5%).
"""
from __future__ import annotations

import argparse
import random
import time

from sample_setup import sample_setup


def simulate(rule, rate: float, trials: int, seed: int = 0) -> float:
    """Recall of ``rule`` on a verifier that fails clean runs with probability ``rate``."""
    from episodes.engine.validate.flakiness import measure

    rng = random.Random(seed)
    caught = 0
    for _ in range(trials):
        clean, buggy = [], []
        while True:
            more_clean, more_buggy = rule.more(clean, buggy)
            if not more_clean and not more_buggy:
                break
            if more_clean:
                clean.append(rng.random() >= rate)
            if more_buggy:
                buggy.append(True)
        caught += measure(clean, buggy).disagrees
    return caught / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="validations per flake rate and rule")
    parser.add_argument("--stable", type=int, default=5, help="validations of the steady verifier per rule")
    parser.add_argument("--target", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from episodes.engine.validate.flakiness import StopRule
    from episodes.engine.repos.samples import SAMPLE_BUGS, fast_boundary_verifier, sample_patch
    from episodes.engine.sandbox import Limits
    from episodes.engine.validate.validator import BugSpec, RepoSpec, Validator

    sample = sample_setup("local")
    try:
        repo = RepoSpec(mirror=sample.mirror, commit=sample.commit, environment=sample.environment)
        setup = Validator(sample.executor, sample.workspaces, Limits(timeout_s=60))
        clean_run, _ = setup.baseline(repo, with_coverage=False)
        repo.baseline = {t: {"status": s} for t, s in clean_run.tests.items()}
        patch = sample_patch(sample.workspaces, sample.mirror, sample.commit, SAMPLE_BUGS[0])

        rules = {"sequential": StopRule(target=args.target), "fixed 5+5 (baseline)": StopRule(target=0.5)}
        results: dict[str, dict] = {}
        for name, rule in rules.items():
            runs: list = []
            validator = Validator(sample.executor, sample.workspaces, Limits(timeout_s=60), flake=rule,
                                  workers=args.workers, on_run=lambda r: runs.append(r) if r.scope == "verifier" else None)
            row = results[name] = {"rule": rule}
            t0 = time.perf_counter()
            for rate in (0.10, 0.05):
                verdicts = [validator.validate(repo, BugSpec(patch, fast_boundary_verifier(rate)), seed=1000 * i + 7)
                            for i in range(args.trials)]
                row[rate] = sum(v.status == "flaky" for v in verdicts) / len(verdicts)
                row[f"sim {rate}"] = simulate(rule, rate, 20000)
            runs.clear()
            steady = [validator.validate(repo, BugSpec(patch, fast_boundary_verifier()), seed=i) for i in range(args.stable)]
            row["flagged"] = sum(v.status != "valid" for v in steady)
            row["stable"] = sum(bool(v.flakiness and v.flakiness.stable) for v in steady)
            row["runs_per_stable"] = len(runs) / len(steady)
            row["needed"] = 2 * rule.needed
            row["seconds"] = time.perf_counter() - t0

        print(f"verifier runs of one bug in parallel: {args.workers}; {args.trials} validations per flake rate, "
              f"{args.stable} of a steady verifier")
        print(f"{'rule':<24}{'recall@10%':>12}{'(sim)':>8}{'recall@5%':>11}{'(sim)':>8}{'flagged':>9}"
              f"{'runs/stable':>13}{'bound needs':>13}{'wall s':>8}")
        for name, r in results.items():
            label = f"{name} <{r['rule'].target:.0%}" if name == "sequential" else name
            print(f"{label:<24}{r[0.10]:>12.0%}{r['sim 0.1']:>8.1%}{r[0.05]:>11.0%}{r['sim 0.05']:>8.1%}"
                  f"{r['flagged']:>6}/{args.stable:<2}{r['runs_per_stable']:>13.1f}{r['needed']:>13}{r['seconds']:>8.1f}")
        new, old = results["sequential"], results["fixed 5+5 (baseline)"]
        print(f"recall ratio at 10% (sequential / fixed 5+5): {new[0.10] / old[0.10] if old[0.10] else float('inf'):.2f}; "
              f"cost ratio per stable bug: {new['runs_per_stable'] / old['runs_per_stable']:.1f}×")
        print(f"targets: recall@10% ≥ 95% → {'met' if new[0.10] >= 0.95 else 'NOT met'}; stable bugs flagged 0 → "
              f"{'met' if new['flagged'] == 0 else 'NOT met'}; runs per stable bug ≤ {new['needed']} → "
              f"{'met' if new['runs_per_stable'] <= new['needed'] else 'NOT met'}")
    finally:
        sample.close()


if __name__ == "__main__":
    main()
