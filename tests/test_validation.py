"""The validation engine against the real local sandbox and the sample repository:
a hand-written valid bug, an invalid one, a deliberately flaky verifier, a decoration hunk
and a patch that does not apply each get the right verdict with their figures."""
import textwrap

import pytest

from episodes.engine.validate.flakiness import StopRule
from episodes.engine.sandbox import Limits
from episodes.engine.validate.validator import BugSpec, Validator, pytest_verifier
from episodes.engine.git.workspace import diff
from episodes.sandboxes import executor, repo_spec, workspaces

pytestmark = pytest.mark.django_db

SHIPPING_VERIFIER = pytest_verifier(["tests/test_shipping.py"])


def make_patch(spec, *edits: tuple[str, str, str]) -> str:
    """A unified diff applying (path, old, new) edits to the pinned sample commit."""
    with workspaces().checkout(spec.mirror, spec.commit) as ws:
        for path, old, new in edits:
            text = (ws / path).read_text()
            assert old in text, f"{old!r} not in {path}"
            (ws / path).write_text(text.replace(old, new, 1))
        return diff(ws)


BOUNDARY_BUG = ("cartcalc/shipping.py", "if weight_grams <= band.max_grams:", "if weight_grams < band.max_grams:")


def validator(records, target=0.7, workers=1, limits=Limits(timeout_s=60)):
    """Target 70%: three runs a side settle a steady verifier (1 − 0.05^(1/3) = 63%)."""
    return Validator(executor(), workspaces(), limits, flake=StopRule(target=target), workers=workers,
                     on_run=records.append)


def test_valid_bug(sample_repo):
    spec = repo_spec(sample_repo)
    records = []
    verdict = validator(records).validate(spec, BugSpec(make_patch(spec, BOUNDARY_BUG), SHIPPING_VERIFIER), seed=7)
    assert verdict.status == "valid", verdict.reason
    assert any("test_shipping.py::test_weight_bands_and_surcharge" in t for t in verdict.fail_to_pass)
    assert len(verdict.pass_to_pass) > 100
    assert not set(verdict.fail_to_pass) & set(verdict.pass_to_pass)
    fl = verdict.flakiness
    assert (fl.clean_runs, fl.clean_passes, fl.buggy_runs, fl.buggy_fails) == (3, 3, 3, 3)  # reverse counts as clean
    assert 0.6 < fl.upper_bound < 0.65  # "< 63% at 95%" after 3 runs a side: weak evidence, and it says so
    assert fl.stable and "(stable at < 70%)" in fl.describe()
    kinds = {(r.code, r.scope) for r in records}
    assert {("clean", "verifier"), ("buggy", "verifier"), ("buggy", "tests"), ("reverse", "verifier")} <= kinds
    # only the tests that execute the patched lines ran; per-test status came from the plugin
    suite = next(r for r in records if r.scope == "tests" and r.purpose == "validation")
    assert suite.outcome == "failed" and 0 < len(suite.tests) < len(spec.baseline) / 2
    assert verdict.suite_scope == "covering" and set(suite.tests) >= set(verdict.fail_to_pass)
    # the whole suite gives the very same FAIL_TO_PASS and PASS_TO_PASS
    full = Validator(executor(), workspaces(), Limits(timeout_s=60), flake=StopRule(target=0.99), suite_scope="full")
    whole = full.validate(spec, BugSpec(make_patch(spec, BOUNDARY_BUG), SHIPPING_VERIFIER), seed=7)
    assert whole.suite_scope == "full" and whole.suite_tests_run == len(spec.baseline)
    assert (whole.fail_to_pass, whole.pass_to_pass) == (verdict.fail_to_pass, verdict.pass_to_pass)


def test_verifier_that_passes_on_buggy_code_is_invalid(sample_repo):
    spec = repo_spec(sample_repo)
    unrelated = pytest_verifier(["tests/test_money.py"])
    verdict = validator([]).validate(spec, BugSpec(make_patch(spec, BOUNDARY_BUG), unrelated), seed=1)
    assert verdict.status == "invalid"
    assert "does not fail on buggy code" in verdict.reason and "3/3 passed" in verdict.reason


def test_verifier_that_fails_on_clean_code_is_invalid(sample_repo):
    spec = repo_spec(sample_repo)
    verdict = validator([]).validate(spec, BugSpec(make_patch(spec, BOUNDARY_BUG), "raise SystemExit(1)\n"), seed=1)
    assert verdict.status == "invalid" and "does not pass on clean code" in verdict.reason


def test_bug_no_suite_test_notices_is_invalid(sample_repo):
    spec = repo_spec(sample_repo)
    # The verifier notices the change, but no test of the suite does: FAIL_TO_PASS is empty.
    patch = make_patch(spec, ("cartcalc/__init__.py", '"""', '"""Edited. '))
    verifier = "import cartcalc, sys\nsys.exit(1 if (cartcalc.__doc__ or '').startswith('Edited') else 0)\n"
    verdict = validator([]).validate(spec, BugSpec(patch, verifier), seed=1)
    assert verdict.status == "invalid" and "FAIL_TO_PASS is empty" in verdict.reason


FLAKY_VERIFIER = textwrap.dedent(
    """\
    # Passes on clean code only ~70% of the time: the seed BugForge passes decides.
    import os, random, sys
    import pytest
    if random.Random(int(os.environ["PYTHONHASHSEED"])).random() < 0.3:
        sys.exit(1)
    sys.exit(0 if pytest.main(["-q", "-p", "no:cacheprovider", "tests/test_shipping.py"]) == 0 else 1)
    """
)


def test_flaky_verifier_is_flaky_with_figures(sample_repo):
    spec = repo_spec(sample_repo)
    records = []
    verdict = validator(records, target=0.2).validate(spec, BugSpec(make_patch(spec, BOUNDARY_BUG), FLAKY_VERIFIER), seed=3)
    assert verdict.status == "flaky", verdict.reason
    fl = verdict.flakiness
    assert 0 < fl.clean_passes < fl.clean_runs and fl.buggy_fails == fl.buggy_runs
    assert fl.flip_rate > 0 and fl.upper_bound > (fl.clean_runs - fl.clean_passes) / fl.clean_runs
    # sequential: the first disagreement is decisive, so it stops well before the 14 a side 20% needs
    assert fl.clean_runs + fl.buggy_runs < 2 * StopRule(target=0.2).needed
    seeds = [r.seed for r in records if r.scope == "verifier"]
    assert len(set(seeds)) == len(seeds)  # every run's seed is recorded and distinct
    assert verdict.fail_to_pass  # staff triaging it still see what the bug breaks


def test_decoration_hunk_is_dropped(sample_repo):
    spec = repo_spec(sample_repo)
    decoration = ("cartcalc/money.py", '"""Decimal based money type.', '"""Decimal-based money type.')
    patch = make_patch(spec, BOUNDARY_BUG, decoration)
    verdict = validator([]).validate(spec, BugSpec(patch, SHIPPING_VERIFIER), seed=5)
    assert verdict.status == "valid", verdict.reason
    assert verdict.dropped_hunks == 1
    assert "money.py" not in verdict.patch and "weight_grams < band.max_grams" in verdict.patch
    assert verdict.original_patch == patch and len(verdict.dropped) == 1 and "money.py" in verdict.dropped[0]


def test_patch_that_does_not_apply_is_invalid_with_gits_words(sample_repo):
    spec = repo_spec(sample_repo)
    bad = "--- a/cartcalc/shipping.py\n+++ b/cartcalc/shipping.py\n@@ -1,1 +1,1 @@\n-no such line\n+other\n"
    verdict = validator([]).validate(spec, BugSpec(bad, SHIPPING_VERIFIER), seed=1)
    assert verdict.status == "invalid" and "patch does not apply" in verdict.reason
