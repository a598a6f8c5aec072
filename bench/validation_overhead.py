"""How much does BugForge add on top of the test runs a validation needs?

Validates M hand-written bugs of the sample repository through the real engine (sandbox,
reused checkouts reset between runs, sequential reruns to a flake-rate target, JUnit
parsing), then replays every run it made — the same
verifier scripts and pytest commands, same interpreter and environment — directly on the
host in plain checkouts prepared beforehand, and prints both wall times and their ratio.

    .venv/bin/python bench/validation_overhead.py [--backend local|docker] [--flake-target 0.05]

Targets (issues 3, 12): ratio ≤ 1.15 with the local backend, ≤ 1.5 with the Docker backend.
Runs go one at a time (--workers 1) so both sides do the same work serially.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time

from sample_setup import sample_setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="local", choices=["local", "docker"])
    parser.add_argument("--flake-target", type=float, default=0.05, help="stop rule target (59 runs a side at 5%%)")
    parser.add_argument("--workers", type=int, default=1, help="parallel runs of one bug (1: like for like)")
    parser.add_argument("--bugs", type=int, default=4, help="how many valid sample bugs (max 4)")
    args = parser.parse_args()

    from episodes.engine.validate.flakiness import StopRule
    from episodes.engine.repos.samples import FLAKY_VERIFIER, SAMPLE_BUGS, sample_patch
    from episodes.engine.sandbox import EnvironmentSpec, Limits, make_executor
    from episodes.engine.validate import suite_report
    from episodes.engine.validate.validator import VERIFIER_PATH, BugSpec, RepoSpec, Validator
    from episodes.engine.git.workspace import apply_patch, git

    sample = sample_setup(args.backend, docker_url=os.environ.get("BUGFORGE_DOCKER_URL"))
    src, commit, factory, executor = sample.src, sample.commit, sample.workspaces, sample.executor
    mirror, environment, work = sample.mirror, sample.environment, sample.work
    try:
        records: list = []
        validator = Validator(executor, factory, Limits(timeout_s=120), flake=StopRule(target=args.flake_target),
                              workers=args.workers, on_run=records.append)
        repo = RepoSpec(mirror=mirror, commit=commit, environment=environment)
        clean_run, _ = validator.baseline(repo, with_coverage=False)
        repo.baseline = {t: {"status": s} for t, s in clean_run.tests.items()}

        samples = [b for b in SAMPLE_BUGS if b.verifier != FLAKY_VERIFIER][: args.bugs]
        bugs = [BugSpec(sample_patch(factory, mirror, commit, b), b.verifier) for b in samples]
        runs_per_bug, statuses = [], []
        bugforge_s = 0.0
        for i, bug in enumerate(bugs):
            records.clear()
            start = time.perf_counter()
            statuses.append(validator.validate(repo, bug, seed=i).status)
            bugforge_s += time.perf_counter() - start
            runs_per_bug.append(list(records))

        # The same runs, directly: plain checkouts made beforehand (not timed), no sandbox,
        # with a host virtualenv of the same spec (the local backend's, built if needed).
        host = executor if args.backend == "local" else make_executor("local", cache_dir=work / "host")
        with factory.checkout(mirror, commit) as source_dir:
            host_env = host.ensure_environment(EnvironmentSpec(name="cartcalc"), source_dir)
        python = str(host.environment_path(host_env) / "bin" / "python")
        direct_s = 0.0
        for bug, runs in zip(bugs, runs_per_bug):
            dirs = {}
            for code in {r.code for r in runs}:
                d = work / f"direct-{code}"
                shutil.rmtree(d, ignore_errors=True)
                git("clone", "-q", "--no-checkout", str(src), str(d))
                git("checkout", "-q", commit, cwd=d)
                if code in ("buggy", "hunk"):
                    apply_patch(d, bug.patch)
                (d / VERIFIER_PATH).parent.mkdir(exist_ok=True)
                (d / VERIFIER_PATH).write_text(bug.verifier)
                dirs[code] = d
            for run in runs:
                env = {**os.environ, "PYTHONPATH": ".", "PYTHONDONTWRITEBYTECODE": "1"}
                if run.scope == "verifier":
                    argv = [python, VERIFIER_PATH]
                else:  # the same plugin the sandboxed suite runs get
                    argv = [python, "-m", "pytest", *suite_report.PYTEST_ARGS] + (list(run.tests) if run.scope == "tests" else [])
                    env.update(suite_report.install(dirs[run.code], validator.test_timeout_s))
                if run.seed is not None:
                    env["PYTHONHASHSEED"] = str(run.seed)
                t0 = time.perf_counter()
                subprocess.run(argv, cwd=dirs[run.code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                direct_s += time.perf_counter() - t0

        n_runs = sum(len(r) for r in runs_per_bug)
        print(f"backend              {args.backend}")
        print(f"bugs validated       {len(bugs)} ({', '.join(statuses)}), stop rule: stable at < {args.flake_target:.0%} "
              f"({StopRule(target=args.flake_target).needed} runs a side), {args.workers} worker(s)")
        print(f"runs                 {n_runs}")
        print(f"BugForge wall time   {bugforge_s:8.2f} s   ({bugforge_s / n_runs * 1000:.0f} ms a run)")
        print(f"direct runs summed   {direct_s:8.2f} s   ({direct_s / n_runs * 1000:.0f} ms a run)")
        target = 1.15 if args.backend == "local" else 1.5
        print(f"overhead ratio       {bugforge_s / direct_s:8.2f}   (target ≤ {target})")
    finally:
        sample.close()


if __name__ == "__main__":
    main()
