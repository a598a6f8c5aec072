"""Evaluation maths (no Django): pass@1 and unbiased pass@k with confidence intervals,
overall and per repository and difficulty.

An *attempt* is a dict ``{"bug_id", "repository", "difficulty", "reward"}`` (reward 1.0/True
solved). pass@k per bug is the unbiased estimator of Chen et al. (2021),
``1 - C(n-c, k) / C(n, k)`` for n attempts with c successes; a group's pass@k is its mean
over bugs. Intervals:

* pass@1 — Wilson score interval and Clopper–Pearson exact interval on all attempts
  (n attempts, c successes; attempts on one bug are treated as independent);
* pass@k — a Wilson interval over bugs, with the mean pass@k as the proportion and the
  number of bugs as n (a normal-approximation bound; say "approx." where shown).
"""
from __future__ import annotations

import math
from collections import defaultdict
from statistics import NormalDist

from episodes.engine.flakiness import binom_cdf
from episodes.engine.passk import pass_at_k  # noqa: F401  (re-exported: the evaluation maths in one place)


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


def clopper_pearson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) two-sided interval for a binomial proportion, by bisection on
    the binomial CDF (the same maths as the flakiness bound)."""
    if n == 0:
        return (0.0, 1.0)
    tail = (1 - confidence) / 2

    def solve(f) -> float:  # f falls from True to False as p rises
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) else (lo, mid)
        return (lo + hi) / 2

    lower = 0.0 if successes == 0 else solve(lambda p: 1 - binom_cdf(successes - 1, n, p) < tail)
    upper = 1.0 if successes == n else solve(lambda p: binom_cdf(successes, n, p) > tail)
    return (lower, upper)


def summarize(attempts: list[dict], ks: tuple[int, ...] = (1,), confidence: float = 0.95) -> dict:
    """pass@1 / pass@k with intervals for a set of attempts (see the module docstring)."""
    per_bug: dict = defaultdict(lambda: [0, 0])
    for a in attempts:
        counts = per_bug[a["bug_id"]]
        counts[0] += 1
        counts[1] += 1 if a.get("reward") in (1, 1.0, True) else 0
    n_attempts = sum(n for n, _ in per_bug.values())
    solved_attempts = sum(c for _, c in per_bug.values())
    out = {"bugs": len(per_bug), "attempts": n_attempts, "solved_attempts": solved_attempts,
           "bugs_solved": sum(1 for _, c in per_bug.values() if c)}
    if not per_bug:
        return out
    p1 = sum(pass_at_k(n, c, 1) for n, c in per_bug.values()) / len(per_bug)
    out["pass@1"] = p1
    out["pass@1_wilson"] = list(wilson(solved_attempts, n_attempts, confidence))
    out["pass@1_clopper_pearson"] = list(clopper_pearson(solved_attempts, n_attempts, confidence))
    for k in ks:
        if k == 1:
            continue
        eligible = [(n, c) for n, c in per_bug.values() if n >= k]
        if len(eligible) < len(per_bug):
            out[f"pass@{k}_note"] = f"{len(per_bug) - len(eligible)} bug(s) have fewer than {k} attempts"
        if eligible:
            value = sum(pass_at_k(n, c, k) for n, c in eligible) / len(eligible)
            out[f"pass@{k}"] = value
            out[f"pass@{k}_wilson_approx"] = list(wilson(value * len(eligible), len(eligible), confidence))
    return out


def report(attempts: list[dict], ks: tuple[int, ...] = (1,), confidence: float = 0.95) -> dict:
    """Overall, per repository and per difficulty summaries."""
    groups: dict[str, dict[str, list]] = {"repository": defaultdict(list), "difficulty": defaultdict(list)}
    for a in attempts:
        groups["repository"][a.get("repository") or "?"].append(a)
        groups["difficulty"][a.get("difficulty") or "unrated"].append(a)
    return {
        "overall": summarize(attempts, ks, confidence),
        "by_repository": {k: summarize(v, ks, confidence) for k, v in sorted(groups["repository"].items())},
        "by_difficulty": {k: summarize(v, ks, confidence) for k, v in sorted(groups["difficulty"].items())},
        "ks": list(ks),
        "confidence": confidence,
    }
