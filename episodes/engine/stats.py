"""Binomial interval maths, in one place (plain Python, no Django).

* ``upper_bound(k, n)`` — the one-sided Clopper–Pearson upper bound on a rate seen k times in
  n trials (the flake-rate bound of ``flakiness``);
* ``clopper_pearson(k, n)`` — the exact two-sided interval (solve rates, pass@1);
* ``wilson(successes, n)`` — the Wilson score interval (successes may be fractional).

Both Clopper–Pearson forms solve the binomial CDF for p by bisection; the ends that have a
closed form (no success: ``1 − α^(1/n)``; all successes: ``α^(1/n)``) use it, so the familiar
figures (59 clean runs for < 5% at 95%) come out exactly.
"""
from __future__ import annotations

import math
from statistics import NormalDist

_STEPS = 60  # bisection halvings: far below float resolution on [0, 1]


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def _bisect(rises, lo: float, hi: float) -> tuple[float, float]:
    """The bracket [lo, hi] around the p where ``rises(p)`` turns from True to False."""
    for _ in range(_STEPS):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rises(mid) else (lo, mid)
    return lo, hi


def _upper(k: int, n: int, tail: float) -> float:
    """The p with P(X ≤ k | p) = tail (the bracket's upper end: never below the true bound)."""
    if n == 0 or k >= n:
        return 1.0
    if k == 0:
        return 1 - tail ** (1 / n)
    return _bisect(lambda p: binom_cdf(k, n, p) > tail, k / n, 1.0)[1]


def _lower(k: int, n: int, tail: float) -> float:
    """The p with P(X ≥ k | p) = tail (the bracket's lower end: never above the true bound)."""
    if n == 0 or k <= 0:
        return 0.0
    if k >= n:
        return tail ** (1 / n)
    return _bisect(lambda p: 1 - binom_cdf(k - 1, n, p) < tail, 0.0, k / n)[0]


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """Clopper–Pearson one-sided upper bound on a rate seen k times in n trials.
    k = 0 gives the familiar 1 − α^(1/n): 45% after 5 clean runs, 26% after 10."""
    return _upper(k, n, 1 - confidence)


def clopper_pearson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) two-sided interval for a binomial proportion: each end is the
    one-sided bound at half the miss rate."""
    if n == 0:
        return (0.0, 1.0)
    tail = (1 - confidence) / 2
    return (_lower(successes, n, tail), _upper(successes, n, tail))


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (successes may be fractional: a mean × n)."""
    if n == 0:
        return (0.0, 1.0)
    z = _z(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))
