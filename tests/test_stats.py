"""The binomial interval maths in one place (episodes.engine.stats): the one- and two-sided
Clopper–Pearson bounds agree with each other and with the binomial CDF they solve."""
import pytest

from episodes.engine import stats


@pytest.mark.parametrize("k,n", [(0, 5), (1, 10), (3, 10), (7, 20), (10, 10)])
def test_two_sided_ends_are_one_sided_bounds_at_half_the_miss_rate(k, n):
    low, high = stats.clopper_pearson(k, n, 0.95)
    assert high == pytest.approx(stats.upper_bound(k, n, 0.975))
    assert low <= k / n <= high
    # the lower end for k successes is one minus the upper end for n - k
    assert low == pytest.approx(1 - stats.clopper_pearson(n - k, n, 0.95)[1], abs=1e-12)


def test_each_end_solves_the_binomial_tail():
    low, high = stats.clopper_pearson(3, 10)
    assert stats.binom_cdf(3, 10, high) == pytest.approx(0.025, abs=1e-9)
    assert 1 - stats.binom_cdf(2, 10, low) == pytest.approx(0.025, abs=1e-9)


def test_no_trials_says_nothing():
    assert stats.clopper_pearson(0, 0) == (0.0, 1.0) and stats.upper_bound(0, 0) == 1.0 and stats.wilson(0, 0) == (0.0, 1.0)


def test_flakiness_and_evaluation_use_this_module():
    from episodes.engine.validate import flakiness
    from training.engine import eval_maths as evaluation
    assert flakiness.upper_bound is stats.upper_bound
    assert evaluation.clopper_pearson is stats.clopper_pearson and evaluation.wilson is stats.wilson
