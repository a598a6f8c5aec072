"""Flakiness as a number: K/N per side, flip rate and a one-sided 95% upper bound."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def binom_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """Clopper–Pearson one-sided upper bound on a rate seen k times in n trials.
    k = 0 gives the familiar 1 − α^(1/n): 45% after 5 clean runs, 26% after 10."""
    if n == 0:
        return 1.0
    if k >= n:
        return 1.0
    alpha = 1 - confidence
    if k == 0:
        return 1 - alpha ** (1 / n)
    lo, hi = k / n, 1.0
    for _ in range(60):  # bisection: the CDF falls as p rises
        mid = (lo + hi) / 2
        if binom_cdf(k, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def flips(outcomes: list[bool]) -> int:
    return sum(1 for a, b in zip(outcomes, outcomes[1:]) if a != b)


@dataclass
class Flakiness:
    clean_runs: int
    clean_passes: int
    buggy_runs: int
    buggy_fails: int
    flip_rate: float | None
    upper_bound: float

    @property
    def disagrees(self) -> bool:
        """Some run went the unexpected way while others did not."""
        return 0 < self.clean_passes < self.clean_runs or 0 < self.buggy_fails < self.buggy_runs

    def describe(self) -> str:
        side = f"clean {self.clean_passes}/{self.clean_runs} pass, buggy {self.buggy_fails}/{self.buggy_runs} fail"
        if self.disagrees:
            return f"{side}; flip rate {self.flip_rate:.0%}; flake rate ≤ {self.upper_bound:.0%} at 95%"
        return f"{side}; flake rate < {self.upper_bound:.0%} at 95%"

    def to_dict(self) -> dict:
        return asdict(self)


def measure(clean_passed: list[bool], buggy_failed: list[bool]) -> Flakiness:
    """``clean_passed``/``buggy_failed``: per run, in run order, whether it went as expected."""
    clean_flakes = len(clean_passed) - sum(clean_passed)
    buggy_flakes = len(buggy_failed) - sum(buggy_failed)
    transitions = max(len(clean_passed) - 1, 0) + max(len(buggy_failed) - 1, 0)
    return Flakiness(
        clean_runs=len(clean_passed),
        clean_passes=sum(clean_passed),
        buggy_runs=len(buggy_failed),
        buggy_fails=sum(buggy_failed),
        flip_rate=(flips(clean_passed) + flips(buggy_failed)) / transitions if transitions else None,
        # the weaker side's evidence is the evidence we have
        upper_bound=max(upper_bound(clean_flakes, len(clean_passed)), upper_bound(buggy_flakes, len(buggy_failed))),
    )
