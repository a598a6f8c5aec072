"""pass@k and per-bug solve figures (plain Python, no Django).

``pass_at_k(n, c, k)`` is the unbiased estimator of Chen et al. (2021): the chance that at
least one of k attempts drawn from the n made (c of them correct) is correct.
"""
from __future__ import annotations

import math


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with n attempts, c of them correct (training's
    evaluation uses this one too)."""
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"need n ≥ 1 and 0 ≤ c ≤ n (got n={n}, c={c})")
    if k < 1 or k > n:
        raise ValueError(f"k must be between 1 and n={n} (got {k})")
    if n - c < k:
        return 1.0
    # 1 - prod_{i=n-c+1}^{n} (1 - k/i): numerically stable form of 1 - C(n-c,k)/C(n,k)
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(per_bug: dict, k: int) -> tuple[float | None, int]:
    """Mean pass@k over the bugs of ``{bug_id: (attempts, successes)}`` with at least k
    attempts (None when there are none), and how many bugs those are."""
    values = [pass_at_k(n, c, k) for n, c in per_bug.values() if n >= k >= 1]
    return (sum(values) / len(values) if values else None), len(values)


def summarize(per_bug: dict, k: int) -> dict:
    """Figures over bugs from ``{bug_id: (attempts, successes)}``: bugs, bugs solved at least
    once, mean pass@1 and mean pass@k over the bugs with at least k attempts."""
    return {
        "bugs": len(per_bug),
        "bugs_solved": sum(1 for n, c in per_bug.values() if c > 0),
        "k": k,
        "pass_at_1": mean_pass_at_k(per_bug, 1)[0],
        "pass_at_k": mean_pass_at_k(per_bug, k)[0],
    }
