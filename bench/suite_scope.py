"""Seconds per candidate when a candidate's suite run is only the tests covering its patch, against
the whole suite for the same candidates (``suite_scope="full"``), measured in the same run on the
bundled sample and on a generated large suite; the verdicts must be the same.

For each repository: baseline under coverage, plan N procedural candidates, derive their
verifiers, then validate each usable candidate twice (same seed): covering scope, full suite.
Prints the suite step's seconds (the buggy-code run the scope changes) and the whole validation's
seconds per candidate for both, their ratios, and whether every verdict (status, FAIL_TO_PASS,
PASS_TO_PASS) agrees.

    .venv/bin/python bench/suite_scope.py [--count 6] [--modules 40] [--tests 50] [--test-ms 10] [--flake-target 0.5]
"""
from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from pathlib import Path

from sample_setup import sample_setup


def generated_suite(root: Path, modules: int, tests: int, test_ms: float) -> None:
    """``modules`` modules of branchy functions and ``tests`` parametrized cases for each, each
    test taking ``test_ms`` (real suites spend milliseconds a test on fixtures, I/O, setup)."""
    (root / "biglib").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "biglib" / "__init__.py").write_text("")
    for m in range(modules):
        (root / "biglib" / f"m{m}.py").write_text(textwrap.dedent(f"""\
            def band(x):
                if x > {m + 10}:
                    return x - {m}
                if x < -{m + 10}:
                    return x + {m}
                return 2 * x


            def total(values):
                acc = 0
                for v in values:
                    if v % 2:
                        acc += band(v)
                    else:
                        acc -= v
                return acc
            """))
        (root / "tests" / f"test_m{m}.py").write_text(textwrap.dedent(f"""\
            import time

            import pytest

            from biglib.m{m} import band, total


            def expected_band(x):
                return x - {m} if x > {m + 10} else x + {m} if x < -{m + 10} else 2 * x


            @pytest.mark.parametrize("x", range(-{tests // 2}, {tests - tests // 2}))
            def test_band(x):
                time.sleep({test_ms / 1000!r})
                assert band(x) == expected_band(x)


            def test_total():
                values = list(range(-30, 31))
                assert total(values) == sum(expected_band(v) if v % 2 else -v for v in values)
            """))


def measure(name, repo, validator_for, count, seed):
    from episodes.engine.inject import procedural
    from episodes.engine.validate.validator import BugSpec

    covering_v, full_v = validator_for("covering"), validator_for("full")
    record, coverage = covering_v.baseline(repo)
    repo.baseline = {t: {"status": s} for t, s in record.tests.items()}
    repo.coverage = coverage
    with covering_v.workspaces.checkout(repo.mirror, repo.commit) as checkout:
        sources = procedural.read_sources(checkout, coverage)
    candidates = [procedural.derive_verifier(covering_v, repo, c) for c in procedural.plan(sources, coverage, count, seed)]
    usable = [c for c in candidates if not c.reject_reason]
    seconds = {"covering": [0.0, 0.0], "full": [0.0, 0.0]}  # [suite step, whole validation]
    same, valid = 0, 0
    for c in usable:
        verdicts = {}
        for scope, validator in (("covering", covering_v), ("full", full_v)):
            runs = []
            validator.on_run = runs.append
            t0 = time.perf_counter()
            verdicts[scope] = validator.validate(repo, BugSpec(c.mutation.patch, c.verifier), seed=c.seed)
            seconds[scope][1] += time.perf_counter() - t0
            seconds[scope][0] += sum(r.duration_s for r in runs if r.code == "buggy" and r.scope in ("suite", "tests")
                                     and r.purpose == "validation")
        a, b = verdicts["covering"], verdicts["full"]
        same += (a.status, a.fail_to_pass, a.pass_to_pass) == (b.status, b.fail_to_pass, b.pass_to_pass)
        valid += a.status == "valid"
    n = max(1, len(usable))
    suite = {k: v[0] / n for k, v in seconds.items()}
    whole = {k: v[1] / n for k, v in seconds.items()}
    print(f"{name}: {len(repo.baseline)} tests, baseline {record.duration_s:.1f} s under coverage; "
          f"{len(usable)} usable of {len(candidates)} candidates, {valid} valid")
    print(f"  suite step / candidate   full {suite['full']:7.2f} s   covering {suite['covering']:7.2f} s   "
          f"ratio {suite['full'] / max(suite['covering'], 1e-9):6.1f}x")
    print(f"  validation / candidate   full {whole['full']:7.2f} s   covering {whole['covering']:7.2f} s   "
          f"ratio {whole['full'] / max(whole['covering'], 1e-9):6.1f}x")
    print(f"  same verdicts            {same}/{len(usable)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6, help="procedural candidates per repository")
    parser.add_argument("--modules", type=int, default=40, help="generated suite: modules")
    parser.add_argument("--tests", type=int, default=50, help="generated suite: parametrized cases per module")
    parser.add_argument("--test-ms", type=float, default=10, help="generated suite: milliseconds a test takes")
    parser.add_argument("--flake-target", type=float, default=0.5, help="stop rule (0.5: 5 runs a side)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    from episodes.engine.validate import coverage_map
    from episodes.engine.validate.flakiness import StopRule
    from episodes.engine.sandbox import EnvironmentSpec, Limits
    from episodes.engine.validate.validator import RepoSpec, Validator
    from episodes.engine.git.workspace import git

    sample = sample_setup("local", pip_packages=(coverage_map.COVERAGE_PACKAGE,))
    try:
        def validator_for(scope):
            return Validator(sample.executor, sample.workspaces, Limits(timeout_s=600), flake=StopRule(target=args.flake_target),
                             workers=2, test_timeout_s=60, suite_scope=scope)

        measure("sample (cartcalc)", RepoSpec(mirror=sample.mirror, commit=sample.commit, environment=sample.environment),
                validator_for, args.count, args.seed)

        big = Path(tempfile.mkdtemp(dir=sample.work, prefix="biglib-"))
        generated_suite(big, args.modules, args.tests, args.test_ms)
        git("init", "-q", cwd=big)
        git("add", "-A", cwd=big)
        git("-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "generated", cwd=big)
        commit = git("rev-parse", "HEAD", cwd=big).strip()
        mirror = sample.workspaces.ensure_mirror(str(big), commit)
        with sample.workspaces.checkout(mirror, commit) as checkout:
            env = sample.executor.ensure_environment(EnvironmentSpec(name="biglib", pip_packages=(coverage_map.COVERAGE_PACKAGE,)), checkout)
        measure(f"generated ({args.modules} modules × {args.tests + 1} tests of {args.test_ms:g} ms)",
                RepoSpec(mirror=mirror, commit=commit, environment=env), validator_for, args.count, args.seed)
    finally:
        sample.close()


if __name__ == "__main__":
    main()
