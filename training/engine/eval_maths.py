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

from collections import defaultdict

from episodes.engine.passk import mean_pass_at_k, pass_at_k  # noqa: F401  (re-exported: the evaluation maths in one place)
from episodes.engine.stats import clopper_pearson, wilson  # noqa: F401  (the binomial intervals: engine.stats)


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
    out["pass@1"] = mean_pass_at_k(per_bug, 1)[0]
    out["pass@1_wilson"] = list(wilson(solved_attempts, n_attempts, confidence))
    out["pass@1_clopper_pearson"] = list(clopper_pearson(solved_attempts, n_attempts, confidence))
    for k in ks:
        if k == 1:
            continue
        value, eligible = mean_pass_at_k(per_bug, k)
        if eligible < len(per_bug):
            out[f"pass@{k}_note"] = f"{len(per_bug) - eligible} bug(s) have fewer than {k} attempts"
        if value is not None:
            out[f"pass@{k}"] = value
            out[f"pass@{k}_wilson_approx"] = list(wilson(value * eligible, eligible, confidence))
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


def headline(summary: dict, ks) -> dict:
    """What a table shows of one summary (``summarize``'s output, as an evaluation's results
    store it): pass@1 with its interval (the exact one; Wilson for results stored before it),
    and the largest pass@k of ``ks`` with its approximate interval and note (None where k is
    1 or the figure is missing). Keys are template-friendly."""
    k = max([1, *ks])
    return {
        "bugs": summary.get("bugs"), "attempts": summary.get("attempts"),
        "pass1": summary.get("pass@1"), "pass1_ci": summary.get("pass@1_clopper_pearson") or summary.get("pass@1_wilson"),
        "k": k, "passk": summary.get(f"pass@{k}") if k > 1 else None,
        "passk_ci": summary.get(f"pass@{k}_wilson_approx"), "passk_note": summary.get(f"pass@{k}_note", ""),
    }
