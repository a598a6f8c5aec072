"""Self-play controller (engine, no Django): with scripted solvers whose skill per bug kind is
known, generation moves toward the target solve-rate band round after round."""
from __future__ import annotations

import pytest

from episodes.engine.inject.selfplay import (
    Config, Controller, Draw, Outcome, Policy, ScriptedSolver, default_arms, run)

A, B, C = "procedural:flip_comparison", "procedural:off_by_one", "procedural:remove_loop"
SOLVER = ScriptedSolver({A: 0.95, B: 0.5, C: 0.05}, combine_decay=0.6)


def simulate(seed: int, learning_rate: float = 1.5, rounds: int = 8, solver=SOLVER, sizes=(1, 2), arms=(A, B, C)):
    config = Config(band=(0.2, 0.8), bugs_per_round=24, attempts_per_bug=8, learning_rate=learning_rate,
                    floor=0.02, sizes=sizes, seed=seed)
    controller = Controller(list(arms), config)
    return controller, run(controller, rounds, solver.play(config.attempts_per_bug, seed=seed))


def test_default_arms_are_the_real_operators():
    arms = default_arms()
    assert "procedural:flip_comparison" in arms and "procedural:swap_call_arguments" in arms
    assert len(arms) == 13


def test_hit_rate_rises_and_converges_above_uniform():
    for seed in (1, 2, 3):
        controller, reports = simulate(seed)
        _, uniform = simulate(seed, learning_rate=0.0)
        rates = [r.hit_rate for r in reports]
        print(f"seed {seed}: learned {[round(x, 2) for x in rates]} uniform {[round(r.hit_rate, 2) for r in uniform]}")
        # round 1 is the uniform mix: the very same draws and outcomes as the baseline
        assert reports[0].allocation == uniform[0].allocation and rates[0] == uniform[0].hit_rate
        assert rates[0] < 0.6
        assert rates[-1] >= 0.7
        assert sum(rates[-3:]) / 3 >= 0.7
        assert sum(rates[-3:]) > sum(r.hit_rate for r in uniform[-3:]) * 1.4
        # weight has moved to the arms whose bugs land in the band: B single, A combined
        w = controller.policy.weights
        assert w[f"{B}×1"] > w[f"{A}×1"] and w[f"{B}×1"] > w[f"{C}×1"]
        assert w[f"{A}×2"] > w[f"{A}×1"]
        # the policy is stored with the round
        assert reports[-1].policy == controller.policy.to_json()


def test_deterministic_with_seeds():
    _, one = simulate(7)
    _, two = simulate(7)
    _, other = simulate(8)
    assert [r.to_json() for r in one] == [r.to_json() for r in two]
    assert [r.to_json() for r in one] != [r.to_json() for r in other]


def test_size_shift_combines_more_when_everything_is_too_easy():
    easy = ScriptedSolver({A: 0.99, B: 0.99, C: 0.99}, combine_decay=0.6)
    controller, reports = simulate(3, solver=easy, sizes=(1, 2, 3))
    assert reports[0].hit_rate < 0.8
    by_size = controller.policy.by_size()
    assert by_size[1] < 0.15 < by_size[2] + by_size[3]
    assert reports[-1].hit_rate >= 0.7


def test_size_shift_combines_fewer_when_everything_is_too_hard():
    hard = ScriptedSolver({A: 0.4, B: 0.4, C: 0.4}, combine_decay=0.3)
    controller, reports = simulate(4, solver=hard, sizes=(1, 2, 3))
    assert controller.policy.by_size()[1] > 0.8
    assert reports[-1].hit_rate >= 0.7


def test_unreachable_band_keeps_every_arm_alive():
    # C (5%) can never land in the band, A (99%) only combined; with single bugs only, A and C are hopeless
    solver = ScriptedSolver({A: 0.99, B: 0.5, C: 0.02})
    controller, reports = simulate(5, solver=solver, sizes=(1,))
    w = controller.policy.weights
    assert w[f"{A}×1"] == pytest.approx(0.02) and w[f"{C}×1"] == pytest.approx(0.02)  # the floor, not zero
    assert w[f"{B}×1"] == pytest.approx(0.96)
    assert reports[-1].hit_rate >= 0.7
    # when no arm can reach the band the policy stays a valid distribution and nothing breaks
    controller, reports = simulate(5, solver=solver, sizes=(1,), arms=(A, C))
    assert all(r.hit_rate <= 0.1 for r in reports)
    assert sum(controller.policy.weights.values()) == pytest.approx(1.0)
    assert min(controller.policy.weights.values()) >= 0.02 - 1e-9


def test_invalid_bugs_are_misses_and_not_counted_in_the_hit_rate():
    controller = Controller([A, B], Config(bugs_per_round=4, sizes=(1,)))
    report = controller.observe(1, [Outcome(Draw(A), "x", valid=False), Outcome(Draw(B), "y", True, 2, 4),
                                    Outcome(Draw(B), "z", True, 4, 4), Outcome(Draw(A), None)])
    assert (report.planted, report.valid, report.in_band) == (3, 2, 1)
    assert report.hit_rate == 0.5
    assert controller.policy.weights[f"{B}×1"] > controller.policy.weights[f"{A}×1"]
    assert Policy.from_json(report.policy).weights == pytest.approx(controller.policy.weights, abs=1e-5)


def test_config_rejects_a_bad_band():
    with pytest.raises(ValueError):
        Config(band=(0.8, 0.2))
