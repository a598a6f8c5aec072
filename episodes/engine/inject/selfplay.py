"""Self-play toward a difficulty band: steer bug generation to where the solver passes some but
not all attempts (GRPO learns nothing from bugs that are always or never solved).

Plain Python, no Django. An *arm* is one generation choice: injection method × operator × size, keyed
``"procedural:flip_comparison×2"`` (the size is how many bugs are combined into one; 1 = a single
bug). The policy holds one weight per arm. Each round:

1. :meth:`Controller.allocate` draws ``bugs_per_round`` arms by the weights, with an
   RNG seeded from (seed, round) so a run is reproducible;
2. the caller plants those bugs and lets the solver attempt each valid one ``attempts_per_bug``
   times, returning one :class:`Outcome` per draw;
3. :meth:`Controller.observe` scores each arm (the fraction of its planted bugs whose measured
   solve rate landed in the band; an invalid bug is a miss) and applies a multiplicative-weights
   update ``w *= exp(lr * (score - mean score))`` followed by a floor, so no arm ever dies; then a
   *size shift*: when the round was mostly too easy, weight moves to arms that combine more bugs;
   when mostly too hard, to arms that combine fewer.

:func:`run` ties the two together around a ``play(round, draws) -> outcomes`` callable.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Sequence


@dataclass(frozen=True)
class Config:
    band: tuple[float, float] = (0.2, 0.8)
    bugs_per_round: int = 8
    attempts_per_bug: int = 4
    learning_rate: float = 1.5
    floor: float = 0.02          # every arm (and size) keeps at least this share of the draws
    sizes: tuple[int, ...] = (1, 2)
    seed: int = 0

    def __post_init__(self):
        low, high = self.band
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"band must satisfy 0 <= low <= high <= 1, not {self.band}")
        if self.bugs_per_round < 1 or self.attempts_per_bug < 1:
            raise ValueError("bugs_per_round and attempts_per_bug must be at least 1")
        if not self.sizes or min(self.sizes) < 1:
            raise ValueError("sizes must be a non-empty list of positive integers")


@dataclass(frozen=True)
class Draw:
    arm: str          # "method:operator"
    size: int = 1

    @property
    def key(self) -> str:
        return f"{self.arm}×{self.size}"

    @classmethod
    def from_key(cls, key: str) -> "Draw":
        arm, _, size = key.rpartition("×")
        return cls(arm, int(size))


@dataclass
class Outcome:
    """What became of one draw: whether its bug was planted and valid, and the solver's score."""
    draw: Draw
    bug: str | int | None = None
    valid: bool = False
    successes: int = 0
    attempts: int = 0

    @property
    def rate(self) -> float | None:
        return self.successes / self.attempts if self.valid and self.attempts else None


@dataclass
class Policy:
    weights: dict[str, float]   # Draw.key -> share of the draws

    @classmethod
    def uniform(cls, arms: Iterable[str], sizes: Sequence[int]) -> "Policy":
        keys = [Draw(a, s).key for a in arms for s in sizes]
        return cls({k: 1.0 / len(keys) for k in keys})

    def to_json(self) -> dict:
        return {"weights": {k: round(w, 6) for k, w in self.weights.items()}}

    @classmethod
    def from_json(cls, data: dict) -> "Policy":
        return cls({k: float(w) for k, w in data["weights"].items()})

    def by_size(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for k, w in self.weights.items():
            size = Draw.from_key(k).size
            out[size] = out.get(size, 0.0) + w
        return out

@dataclass
class RoundReport:
    round: int
    allocation: dict[str, int]       # Draw.key ("method:operator×size") -> how many draws
    planted: int
    valid: int
    rates: list[dict]                # one per draw: arm, size, bug, valid, successes, attempts, rate, in_band
    in_band: int
    hit_rate: float | None           # in_band / valid (None when nothing was valid)
    policy: dict = field(default_factory=dict)  # the policy after this round's update

    def to_json(self) -> dict:
        return asdict(self)


def arm_key(method: str, operator: str) -> str:
    return f"{method}:{operator}"


def default_arms(operators: Iterable[str] | None = None, method: str = "procedural") -> list[str]:
    """One arm per procedural mutation operator (the registry's names when none are given)."""
    if operators is None:
        from episodes.engine.inject.mutators import OPERATORS
        operators = OPERATORS
    return [arm_key(method, op) for op in operators]


def parse_arm(arm: str) -> tuple[str, str]:
    method, _, operator = arm.partition(":")
    return method, operator


def _normalise(weights: dict, floor: float) -> dict:
    """Scale to sum 1, then lift every weight to at least ``floor`` (and rescale the rest)."""
    total = sum(weights.values()) or 1.0
    out = {k: w / total for k, w in weights.items()}
    floor = min(floor, 1.0 / len(out))
    low = {k for k, w in out.items() if w < floor}
    if low:
        rest = sum(w for k, w in out.items() if k not in low) or 1.0
        spare = 1.0 - floor * len(low)
        out = {k: floor if k in low else w / rest * spare for k, w in out.items()}
    return out


def _mw_update(weights: dict, scores: dict, lr: float, floor: float) -> dict:
    """Multiplicative weights toward higher scores; keys without a score this round keep theirs."""
    if not scores:
        return _normalise(weights, floor)
    mean = sum(scores.values()) / len(scores)
    new = {k: w * math.exp(lr * (scores[k] - mean)) if k in scores else w for k, w in weights.items()}
    return _normalise(new, floor)


class Controller:
    def __init__(self, arms: Sequence[str], config: Config = Config(), policy: Policy | None = None):
        if not arms:
            raise ValueError("self-play needs at least one arm")
        self.arms, self.config = list(arms), config
        self.policy = policy or Policy.uniform(self.arms, config.sizes)

    def in_band(self, rate: float | None) -> bool:
        low, high = self.config.band
        return rate is not None and low <= rate <= high

    def allocate(self, round_number: int) -> list[Draw]:
        rng = random.Random(f"{self.config.seed}:{round_number}")
        keys = sorted(self.policy.weights)
        picked = rng.choices(keys, weights=[self.policy.weights[k] for k in keys], k=self.config.bugs_per_round)
        return [Draw.from_key(k) for k in picked]

    def observe(self, round_number: int, outcomes: Sequence[Outcome]) -> RoundReport:
        """Score the round, update the policy, and report."""
        low, high = self.config.band
        cfg = self.config
        rows, hits_by_arm, allocation = [], {}, {}
        too_easy = too_hard = 0
        for o in outcomes:
            hit = self.in_band(o.rate)
            rows.append({"arm": o.draw.arm, "size": o.draw.size, "bug": o.bug, "valid": o.valid,
                         "successes": o.successes, "attempts": o.attempts,
                         "rate": None if o.rate is None else round(o.rate, 4), "in_band": hit})
            hits_by_arm.setdefault(o.draw.key, []).append(hit)
            allocation[o.draw.key] = allocation.get(o.draw.key, 0) + 1
            if o.rate is not None:
                too_easy += o.rate > high
                too_hard += o.rate < low
        valid = sum(1 for o in outcomes if o.rate is not None)
        hits = sum(r["in_band"] for r in rows)
        scores = {k: sum(h) / len(h) for k, h in hits_by_arm.items() if k in self.policy.weights}
        weights = _mw_update(self.policy.weights, scores, cfg.learning_rate, cfg.floor)
        sizes = {Draw.from_key(k).size for k in weights}
        if valid and len(sizes) > 1 and cfg.learning_rate:  # the size shift
            tilt = (too_easy - too_hard) / valid            # > 0: too easy -> combine more
            mean = sum(Draw.from_key(k).size * w for k, w in weights.items())
            weights = _normalise({k: w * math.exp(cfg.learning_rate * tilt * (Draw.from_key(k).size - mean) / 2)
                                  for k, w in weights.items()}, cfg.floor)
        self.policy = Policy(weights)
        return RoundReport(
            round=round_number, allocation=allocation, planted=sum(1 for o in outcomes if o.bug is not None),
            valid=valid, rates=rows, in_band=hits, hit_rate=hits / valid if valid else None,
            policy=self.policy.to_json())

Play = Callable[[int, list[Draw]], Sequence[Outcome]]


def run(controller: Controller, rounds: int, play: Play, start: int = 1,
        on_round: Callable[[RoundReport], None] | None = None) -> list[RoundReport]:
    """``rounds`` rounds of allocate → play → observe (rounds numbered from ``start``)."""
    reports = []
    for r in range(start, start + rounds):
        report = controller.observe(r, play(r, controller.allocate(r)))
        reports.append(report)
        if on_round:
            on_round(report)
    return reports


# --- a scripted solver, for simulations and tests ----------------------------------------------


@dataclass(frozen=True)
class ScriptedSolver:
    """A solver whose chance of solving a bug is known: ``skill[arm] * combine_decay ** (size - 1)``
    (arms not in ``skill`` get ``default``). Deterministic given the seed."""
    skill: dict[str, float]
    combine_decay: float = 0.6
    default: float = 0.5
    valid_rate: dict[str, float] = field(default_factory=dict)  # chance an arm's bug is valid (default 1)

    def p_solve(self, draw: Draw) -> float:
        return self.skill.get(draw.arm, self.default) * self.combine_decay ** (draw.size - 1)

    def play(self, attempts: int, seed: int = 0) -> Play:
        def play(round_number: int, draws: list[Draw]) -> list[Outcome]:
            rng = random.Random(f"solver:{seed}:{round_number}")
            out = []
            for i, d in enumerate(draws):
                valid = rng.random() < self.valid_rate.get(d.arm, 1.0)
                p = self.p_solve(d)
                wins = sum(rng.random() < p for _ in range(attempts)) if valid else 0
                out.append(Outcome(d, f"r{round_number}b{i}", valid, wins, attempts if valid else 0))
            return out
        return play
