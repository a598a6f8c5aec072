"""Verdicts you can bank on, against the real sandbox and the sample repository: sequential
reruns stop at the target or the first disagreement (a verifier with a known 10% flake rate
is caught), every invalid verdict has its own reason with K/N (a hang on either side, a fork
bomb, a verifier that runs no test), deterministic limit hits are confirmed once, not rerun."""
import pytest

from episodes.engine.validate import flakiness
from episodes.engine.validate.flakiness import StopRule
from episodes.engine.repos.samples import fast_boundary_verifier
from episodes.engine.sandbox import Limits
from episodes.engine.validate.validator import BugSpec, Validator
from episodes.sandboxes import executor, repo_spec, workspaces
from tests.test_validation import BOUNDARY_BUG, make_patch

pytestmark = pytest.mark.django_db

# Plain Python, no pytest: ~40 ms a run, so the 59 runs a side of the 5% target stay cheap.
CHECK = (
    "from cartcalc.shipping import DEFAULT_SHIPPING as policy\n"
    "band = policy.bands[0]\n"
    "fixed = policy.band_for(band.max_grams) is band\n"
)
STEADY = fast_boundary_verifier()
# Fails on clean code on one run in ten: the per-run seed BugForge passes decides.
TEN_PERCENT_FLAKY = fast_boundary_verifier(0.10)


def validator(records, target=0.05, workers=1, limits=Limits(timeout_s=60)):
    return Validator(executor(), workspaces(), limits, flake=StopRule(target=target), workers=workers,
                     on_run=records.append)


@pytest.fixture
def spec(sample_repo):
    return repo_spec(sample_repo)


def sides(records):
    verifier = [r for r in records if r.scope == "verifier"]
    return [r for r in verifier if r.code != "buggy"], [r for r in verifier if r.code == "buggy"]


def test_stable_verifier_gets_exactly_the_runs_the_bound_needs_in_parallel(spec):
    records = []
    verdict = validator(records, target=0.05, workers=2).validate(spec, BugSpec(make_patch(spec, BOUNDARY_BUG), STEADY),
                                                                 seed=11)
    assert verdict.status == "valid", verdict.reason
    clean, buggy = sides(records)
    assert flakiness.runs_needed(0.05) == 59
    assert len(clean) == len(buggy) == 59  # no run more than the bound needs
    assert verdict.flakiness.stable and verdict.flakiness.upper_bound < 0.05
    assert verdict.flakiness.describe().endswith("flake rate < 5.0% at 95% (stable at < 5.0%)")


def test_ten_percent_flaky_verifier_is_caught_at_the_default_target(spec):
    records = []
    verdict = validator(records).validate(spec, BugSpec(make_patch(spec, BOUNDARY_BUG), TEN_PERCENT_FLAKY), seed=4)
    assert verdict.status == "flaky", verdict.reason
    clean, buggy = sides(records)
    failed = [r for r in clean if r.outcome != "passed"]
    assert failed and all(r.seed % 1000 < 100 for r in failed)  # exactly the runs its rule fails
    assert all(r.outcome == "failed" for r in buggy)
    assert verdict.flakiness.disagrees and not verdict.flakiness.stable
    assert len(clean) + len(buggy) < 2 * 59  # stopped at the disagreement


def test_stop_rule_decides_from_outcomes():
    rule = StopRule(target=0.2)
    assert rule.needed == 14
    assert rule.more([True], [True]) == (13, 13)
    assert rule.more([True] * 14, [True] * 3) == (0, 11)
    assert rule.more([True, False], [True]) == (0, 0)  # a disagreement is decisive
    assert StopRule(target=0.01, max_runs=50).more([True], [True]) == (49, 49)  # within its budget
    with pytest.raises(ValueError):
        StopRule(target=1.5)


@pytest.mark.parametrize("side", ["clean", "buggy"])
def test_hang_is_a_timeout_on_its_side_confirmed_once(spec, side):
    hang_when = "True" if side == "clean" else "not fixed"
    verifier = CHECK + f"import time\nif {hang_when}:\n    time.sleep(600)\nraise SystemExit(0 if fixed else 1)\n"
    records = []
    verdict = validator(records, limits=Limits(timeout_s=2)).validate(
        spec, BugSpec(make_patch(spec, BOUNDARY_BUG), verifier), seed=2)
    assert verdict.status == "invalid"
    assert verdict.kind == f"timeout_{side}", verdict.reason
    assert "timeout limit of 2 s" in verdict.reason and "(2/2 runs)" in verdict.reason
    clean, buggy = sides(records)
    hung = clean if side == "clean" else buggy
    assert len(hung) == 2 and all(r.outcome == "timeout" for r in hung)  # one confirming run, not four
    assert not any(r.scope == "suite" for r in records)  # a hang stops before the suite
    fl = verdict.flakiness  # K/N kept on the invalid verdict
    assert (fl.clean_runs, fl.buggy_runs) == ((2, 0) if side == "clean" else (1, 2))


def test_fork_bomb_is_the_pids_limit_not_a_timeout(spec):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    records = []
    verdict = validator(records, limits=Limits(timeout_s=3, pids=32)).validate(
        spec, BugSpec(make_patch(spec, BOUNDARY_BUG), bomb), seed=2)
    assert verdict.kind == "pids_clean", verdict.reason
    assert "pids limit" in verdict.reason and "(2/2 runs)" in verdict.reason
    assert all(r.killed_by == "pids" for r in sides(records)[0])


def test_verifier_that_runs_no_test_says_so(spec):
    no_tests = ("import sys, pytest\n"
                "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-k', 'no_such_test', 'tests/test_shipping.py']))\n")
    records = []
    verdict = validator(records).validate(spec, BugSpec(make_patch(spec, BOUNDARY_BUG), no_tests), seed=2)
    assert verdict.status == "invalid" and verdict.kind == "no_tests_ran", verdict.reason
    assert "runs no test on clean code (2/2 runs" in verdict.reason
    assert {r.outcome for r in sides(records)[0]} == {"no_tests"} and {r.exit_code for r in sides(records)[0]} == {5}


def test_first_wrong_run_then_right_is_flaky_not_invalid(spec):
    # Fails on clean code on the validation's first run only (its seed is the first drawn): a
    # wrong first run is confirmed, and a right one after it makes the bug flaky, not invalid.
    first_only = CHECK + (
        "import os\n"
        "if not fixed:\n    raise SystemExit(1)\n"
        "raise SystemExit(1 if int(os.environ['PYTHONHASHSEED']) == FIRST else 0)\n"
    )
    records = []
    v = validator(records, target=0.5)
    import random
    first_seed = random.Random(9).randrange(2**31)  # the validation's first run gets the first draw
    verdict = v.validate(spec, BugSpec(make_patch(spec, BOUNDARY_BUG), first_only.replace("FIRST", str(first_seed))),
                         seed=9)
    clean, _ = sides(records)
    assert clean[0].outcome == "failed" and any(r.outcome == "passed" for r in clean)
    assert verdict.status == "flaky", verdict.reason
