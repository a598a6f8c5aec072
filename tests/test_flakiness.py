import pytest

from episodes.engine.validate import flakiness
def test_zero_flakes_gives_the_textbook_bound():
    assert flakiness.upper_bound(0, 5) == pytest.approx(0.451, abs=1e-3)  # "< 45% after 5 runs"
    assert flakiness.upper_bound(0, 29) < 0.10 < flakiness.upper_bound(0, 28)  # n ≥ ln(.05)/ln(.9)
    assert flakiness.upper_bound(0, 59) < 0.05


def test_clopper_pearson_with_failures_matches_the_binomial():
    bound = flakiness.upper_bound(3, 10)
    assert flakiness.binom_cdf(3, 10, bound) == pytest.approx(0.05, abs=1e-6)
    assert 0.3 < bound < 0.7
    assert flakiness.upper_bound(10, 10) == 1.0


def test_measure_counts_sides_flips_and_disagreement():
    fl = flakiness.measure([True, False, True, True], [True, True, True])
    assert (fl.clean_runs, fl.clean_passes, fl.buggy_runs, fl.buggy_fails) == (4, 3, 3, 3)
    assert fl.flip_rate == pytest.approx(2 / 5)  # two flips over (4-1)+(3-1) transitions
    assert fl.disagrees and "flip rate" in fl.describe()
    steady = flakiness.measure([True] * 5, [True] * 5)
    assert not steady.disagrees and steady.describe().endswith("flake rate < 45% at 95%")


def test_all_runs_wrong_is_not_flaky_it_is_consistent():
    assert not flakiness.measure([False] * 5, [True] * 5).disagrees
