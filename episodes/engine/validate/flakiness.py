"""Flakiness as a number: K/N per side, flip rate and a one-sided 95% upper bound, and the
sequential rule that decides how many runs a verifier gets (``StopRule``)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from episodes.engine.stats import binom_cdf, upper_bound  # noqa: F401  (the bound's maths: engine.stats)


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
    target: float | None = None  # the bound the runs aimed at (None: no target)

    @property
    def stable(self) -> bool:
        """No run disagreed and the bound is below the target: "stable at < target"."""
        return self.target is not None and not self.disagrees and self.upper_bound < self.target

    @property
    def disagrees(self) -> bool:
        """Some run went the unexpected way while others did not."""
        return 0 < self.clean_passes < self.clean_runs or 0 < self.buggy_fails < self.buggy_runs

    def describe(self) -> str:
        side = f"clean {self.clean_passes}/{self.clean_runs} pass, buggy {self.buggy_fails}/{self.buggy_runs} fail"
        if self.disagrees:
            return f"{side}; flip rate {self.flip_rate:.0%}; flake rate ≤ {self.upper_bound:.0%} at 95%"
        if self.target is not None:
            verdict = ("stable" if self.stable else "not yet stable") + f" at < {_pct(self.target)}"
            return f"{side}; flake rate < {_pct(self.upper_bound)} at 95% ({verdict})"
        return f"{side}; flake rate < {_pct(self.upper_bound)} at 95%"

    def to_dict(self) -> dict:
        return asdict(self)


def _pct(rate: float) -> str:
    return f"{rate:.0%}" if rate >= 0.1 or rate == 0 else f"{rate:.1%}"


def measure(clean_passed: list[bool], buggy_failed: list[bool], target: float | None = None) -> Flakiness:
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
        target=target,
    )


def runs_needed(target: float, confidence: float = 0.95) -> int:
    """Runs per side, all going the expected way, before the bound drops below ``target``:
    the least n with 1 − α^(1/n) < target (59 at 5%, 29 at 10%)."""
    if not 0 < target < 1:
        raise ValueError(f"a flake-rate target is a fraction between 0 and 1, not {target!r}")
    n = max(1, math.ceil(math.log(1 - confidence) / math.log(1 - target)))
    while upper_bound(0, n, confidence) >= target:  # guard the float edge
        n += 1
    return n


@dataclass(frozen=True)
class StopRule:
    """Sequential reruns: keep running both sides until each side's bound is below
    ``target`` (stable) or a run disagrees with the others (flaky: decisive, stop), within
    ``max_runs`` per side (then the bug stays valid but not stable)."""

    target: float = 0.05
    max_runs: int = 200

    def __post_init__(self):
        runs_needed(self.target)  # validates the target

    @property
    def needed(self) -> int:
        return runs_needed(self.target)

    def more(self, clean_passed: list[bool], buggy_failed: list[bool]) -> tuple[int, int]:
        """How many more clean and buggy runs to make ((0, 0): decided)."""
        if measure(clean_passed, buggy_failed).disagrees:
            return 0, 0
        goal = min(self.needed, self.max_runs)
        return max(0, goal - len(clean_passed)), max(0, goal - len(buggy_failed))
