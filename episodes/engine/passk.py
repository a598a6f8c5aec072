"""pass@k and per-bug solve figures (plain Python, no Django).

``pass_at_k(n, c, k)`` is the unbiased estimator of Chen et al. (2021): the chance that at
least one of k attempts drawn from the n made (c of them correct) is correct.
"""
from __future__ import annotations

from math import comb


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """None when fewer than k attempts were made (the figure is not defined)."""
    if k < 1 or n < k:
        return None
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def summarize(per_bug: dict, k: int) -> dict:
    """Figures over bugs from ``{bug_id: (attempts, successes)}``: bugs, bugs solved at least
    once, mean pass@1 and mean pass@k over the bugs with at least k attempts."""
    p1 = [pass_at_k(n, c, 1) for n, c in per_bug.values() if n >= 1]
    pk = [pass_at_k(n, c, k) for n, c in per_bug.values() if n >= k]
    return {
        "bugs": len(per_bug),
        "bugs_solved": sum(1 for n, c in per_bug.values() if c > 0),
        "k": k,
        "pass_at_1": sum(p1) / len(p1) if p1 else None,
        "pass_at_k": sum(pk) / len(pk) if pk else None,
    }
