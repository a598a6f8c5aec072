"""Does self-play steer generation into the target solve-rate band?

Simulates the self-play controller (``episodes.engine.inject.selfplay``) against a scripted solver whose
skill per bug kind is known — flip_comparison bugs solved 95% of the time, off_by_one 50%,
remove_loop 5%, each combined bug multiplying the chance by 0.6 — and prints, per round, the band
hit rate (the share of valid bugs whose measured solve rate lies in the band) of the learning
policy and of a uniform-random policy run with the same seeds, and their ratio.

    .venv/bin/python bench/selfplay_sim.py [--rounds 8] [--bugs-per-round 24] [--attempts 8] [--seeds 1,2,3]

Target (issue 16): final-round hit rate >= 0.7, round 1 equal to the uniform mix.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from episodes.engine.inject.selfplay import Config, Controller, ScriptedSolver, run  # noqa: E402

SKILL = {"procedural:flip_comparison": 0.95, "procedural:off_by_one": 0.5, "procedural:remove_loop": 0.05}


def hit_rates(seed: int, args, learning_rate: float) -> list[float]:
    config = Config(band=args.band, bugs_per_round=args.bugs_per_round, attempts_per_bug=args.attempts,
                    learning_rate=learning_rate, floor=args.floor, sizes=tuple(args.sizes), seed=seed)
    controller = Controller(list(SKILL), config)
    solver = ScriptedSolver(SKILL, combine_decay=args.decay)
    return [r.hit_rate or 0.0 for r in run(controller, args.rounds, solver.play(args.attempts, seed=seed))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--bugs-per-round", type=int, default=24)
    parser.add_argument("--attempts", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1.5)
    parser.add_argument("--floor", type=float, default=0.02)
    parser.add_argument("--decay", type=float, default=0.6, help="solve chance multiplier per extra combined bug")
    parser.add_argument("--band", type=lambda s: tuple(float(x) for x in s.split(",")), default=(0.2, 0.8))
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3, 4, 5])
    args = parser.parse_args()

    learned = [hit_rates(s, args, args.learning_rate) for s in args.seeds]
    uniform = [hit_rates(s, args, 0.0) for s in args.seeds]
    print(f"band {args.band}, {args.bugs_per_round} bugs x {args.attempts} attempts per round, "
          f"seeds {args.seeds} (mean over seeds)")
    print(f"{'round':>5} {'self-play':>10} {'uniform':>8} {'ratio':>6}")
    for r in range(args.rounds):
        a = sum(run_[r] for run_ in learned) / len(learned)
        b = sum(run_[r] for run_ in uniform) / len(uniform)
        print(f"{r + 1:>5} {a:>10.3f} {b:>8.3f} {a / b if b else float('inf'):>6.2f}")
    last_a = sum(run_[-1] for run_ in learned) / len(learned)
    last_b = sum(run_[-1] for run_ in uniform) / len(uniform)
    print(f"final round: self-play {last_a:.3f} vs uniform {last_b:.3f} (x{last_a / last_b:.2f}); "
          f"target >= 0.7: {'met' if last_a >= 0.7 else 'NOT met'}")


if __name__ == "__main__":
    main()
