"""What does the tamper-resistant grader cost per episode?

Grades a genuine fix of each valid sample bug with ``episodes.engine.solve.reward.grade`` (screen,
signed result stream, canary, cross-checks), and, as the baseline in the same run, makes the
runs the grader made before it had them: a pristine checkout compared with the agent's, the
verifier, then a fresh checkout and the FAIL_TO_PASS/PASS_TO_PASS tests with a JUnit report
(``Validator.run_verifier`` + ``Validator.run_suite``). Prints seconds per episode and the ratio.

    .venv/bin/python bench/grading_cost.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from sample_setup import sample_setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from episodes.engine.solve.reward import grade, workspace_changes
    from episodes.engine.repos.samples import FLAKY_VERIFIER, SAMPLE_BUGS, sample_patch
    from episodes.engine.sandbox import Limits
    from episodes.engine.validate.flakiness import StopRule
    from episodes.engine.validate.validator import BugSpec, RepoSpec, Validator
    from episodes.engine.git.workspace import apply_patch

    sample = sample_setup("local")
    try:
        limits = Limits(timeout_s=120)
        repo = RepoSpec(mirror=sample.mirror, commit=sample.commit, environment=sample.environment)
        validator = Validator(sample.executor, sample.workspaces, limits, flake=StopRule(target=0.5))  # setup only
        clean, _ = validator.baseline(repo, with_coverage=False)
        repo.baseline = {t: {"status": s} for t, s in clean.tests.items()}
        bugs = []
        for b in [b for b in SAMPLE_BUGS if b.verifier != FLAKY_VERIFIER]:
            spec = BugSpec(sample_patch(sample.workspaces, sample.mirror, sample.commit, b), b.verifier)
            verdict = validator.validate(repo, spec, seed=1)
            if verdict.status == "valid":
                bugs.append((b, spec, verdict.fail_to_pass + verdict.pass_to_pass))

        def agent_fix(b, spec):
            ws = sample.workspaces.task_checkout(sample.mirror, sample.commit, patch=spec.patch)
            path = ws.__enter__()
            f = path / b.path
            f.write_text(f.read_text().replace(b.new, b.old, 1))
            return ws, path

        def before(b, spec, tests) -> bool:  # the old grader's runs, without the integrity layer
            ctx, ws = agent_fix(b, spec)
            try:
                with sample.workspaces.checkout(sample.mirror, sample.commit, patch=spec.patch) as pristine:
                    diffs, _ = workspace_changes(pristine, ws)
                    patch = "".join(diffs.values())
                    apply_patch(pristine, patch)
                    verifier = validator.run_verifier(repo, spec.verifier, pristine, "candidate", "grading")
                with sample.workspaces.checkout(sample.mirror, sample.commit, patch=spec.patch) as fresh:
                    apply_patch(fresh, patch)
                    suite = validator.run_suite(repo, fresh, "candidate", "grading", tests=tests)
                return verifier.outcome == "passed" and suite.outcome == "passed"
            finally:
                ctx.__exit__(None, None, None)

        def after(b, spec, tests) -> bool:
            ctx, ws = agent_fix(b, spec)
            try:
                result = grade(sample.executor, sample.workspaces, repo, spec, fail_to_pass=tests[:1],
                               pass_to_pass=tests[1:], workspace=ws, limits=limits)
                return result.reward
            finally:
                ctx.__exit__(None, None, None)

        timings = {"before": [], "after": []}
        rewards = {"before": [], "after": []}
        for _ in range(args.rounds):
            for name, fn in (("before", before), ("after", after)):  # interleaved: same load for both
                for b, spec, tests in bugs:
                    start = time.perf_counter()
                    rewards[name].append(fn(b, spec, tests))
                    timings[name].append(time.perf_counter() - start)
        b_s, a_s = statistics.mean(timings["before"]), statistics.mean(timings["after"])
        print(f"host load average: {os.getloadavg()[0]:.2f}")
        print(f"episodes graded: {len(timings['after'])} per side ({len(bugs)} sample bugs x {args.rounds} rounds)")
        print(f"genuine fixes rewarded: before {sum(rewards['before'])}/{len(rewards['before'])}, "
              f"after {sum(rewards['after'])}/{len(rewards['after'])}")
        print(f"seconds per episode: before {b_s:.3f} (median {statistics.median(timings['before']):.3f}), "
              f"after {a_s:.3f} (median {statistics.median(timings['after']):.3f})")
        print(f"ratio after/before: {a_s / b_s:.2f}")
    finally:
        sample.close()


if __name__ == "__main__":
    main()
