"""Combined self-play arms honour the drawn operator: a ``method:operator×2`` draw merges valid
bugs of that operator where one module has enough of them in different functions, and says in
the round's log when it could not (then it mixes in other operators, keeping the drawn one)."""
from __future__ import annotations

import pytest

from episodes.injection import selfplay
from episodes.engine.inject import combine
from episodes.engine.repos.samples import SAMPLE_BUGS, SampleBug, pytest_verifier, sample_patch
from episodes.engine.inject.selfplay import Config, Controller, Policy, ScriptedSolver
from episodes.models import Bug, InjectionBatch, SelfPlay

FLIP, OFF = "procedural:flip_comparison", "procedural:off_by_one"


def test_preferring_puts_wholly_preferred_groups_first_then_the_most_preferred():
    parts = [combine.Component(i, f"m.py::f{i}", "", "", "") for i in range(1, 5)] + [
        combine.Component(9, "other.py::g", "", "", "")]
    found, whole = combine.preferring(parts, 2, 1, seed=1, preferred={2, 3})
    assert whole == 1 and [c.bug_id for c in found[0]] == [2, 3]
    found, whole = combine.preferring(parts, 2, 3, seed=1, preferred={4})  # 4 has no preferred partner
    assert whole == 0 and len(found) == 3
    assert all(4 in {c.bug_id for c in g} for g in found)  # the three pairs with 4 come before the others
    assert combine.preferring(parts, 2, 2, seed=1, preferred=set())[1] == 0


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setitem(selfplay.SCRIPTED_SOLVERS, "known", ScriptedSolver({FLIP: 0.5, OFF: 0.5}))


def seed_drawing_each_arm_once() -> int:
    """A seed whose first round draws one flip_comparison×2 and one off_by_one×2 (as run_selfplay will)."""
    arms = sorted([FLIP, OFF])
    for seed in range(200):
        c = Controller(arms, Config(bugs_per_round=2, attempts_per_bug=2, sizes=(2,), seed=seed),
                       Policy.uniform(arms, (2,)))
        if sorted(d.key for d in c.allocate(1)) == [f"{FLIP}×2", f"{OFF}×2"]:
            return seed
    raise AssertionError("no seed draws each arm once")


@pytest.mark.django_db
def test_combined_draws_use_the_drawn_operator_and_log_when_they_cannot(sample_repo, scripted, settings):
    from episodes.sandboxes import repo_spec, workspaces

    settings.BUGFORGE_FLAKE_TARGET = 0.99  # one run a side
    spec = repo_spec(sample_repo)
    percent = SampleBug("cartcalc/discounts.py::PercentageDiscount.__post_init__", "cartcalc/discounts.py",
                        "if not Decimal(0) < pct <= Decimal(100):", "if not Decimal(0) < pct < Decimal(100):",
                        pytest_verifier(["tests/test_discounts.py"]), "A 100% discount is refused.")
    free_units, rate_for = [b for b in SAMPLE_BUGS if b.path == "cartcalc/discounts.py"]
    made = {}
    for sample, operator in [(free_units, "off_by_one"), (rate_for, "flip_comparison"), (percent, "flip_comparison")]:
        made[sample.target] = Bug.objects.create(
            repository=sample_repo, base_commit=sample_repo.pinned_commit, target=sample.target, method="procedural",
            operator=operator, patch=sample_patch(workspaces(), spec.mirror, spec.commit, sample),
            verifier=sample.verifier, problem_statement=sample.problem_statement, status=Bug.Status.VALID).pk
    flips = {made[rate_for.target], made[percent.target]}

    sp = selfplay.start(sample_repo, "scripted:known", rounds=1, bugs_per_round=2, attempts_per_bug=2,
                        seed=seed_drawing_each_arm_once(), operators=["flip_comparison", "off_by_one"], sizes=(2,),
                        sync=True)
    assert sp.status == SelfPlay.Status.DONE, sp.error
    [report] = sp.rounds
    assert report["allocation"] == {f"{FLIP}×2": 1, f"{OFF}×2": 1}
    by_arm = {row["arm"]: row["bug"] for row in report["rates"]}
    flip_bug, off_bug = Bug.objects.get(pk=by_arm[FLIP]), Bug.objects.get(pk=by_arm[OFF])
    # two flip_comparison bugs in different functions of discounts.py: the flip draw merges exactly those
    assert set(flip_bug.provenance["components"]) == flips
    assert flip_bug.provenance["component_operators"] == ["flip_comparison", "flip_comparison"]
    # one off_by_one bug only: the off_by_one draw keeps it and mixes in a flip_comparison one, and says so
    assert made[free_units.target] in off_bug.provenance["components"]
    assert sorted(off_bug.provenance["component_operators"]) == ["flip_comparison", "off_by_one"]
    assert flip_bug.method == off_bug.method == "combine" and flip_bug.provenance["arm"] == f"{FLIP}×2"
    assert report["log"] == [f"{OFF}×2: 1 of 1 combined bug(s) ({off_bug.pk}) mix in other operators: "
                             "too few valid off_by_one bugs in different functions of one module"]
    assert "mix in other operators than off_by_one" in InjectionBatch.objects.get(pk=off_bug.batch_id).note
    assert InjectionBatch.objects.get(pk=flip_bug.batch_id).note == ""


@pytest.mark.django_db
def test_a_combined_draw_with_nothing_to_combine_is_logged(sample_repo, scripted):
    sp = selfplay.start(sample_repo, "scripted:known", rounds=1, bugs_per_round=1, attempts_per_bug=1, seed=2,
                        operators=["off_by_one"], sizes=(2,), sync=True)
    assert sp.status == SelfPlay.Status.DONE, sp.error
    [report] = sp.rounds
    assert report["planted"] == 0 and report["hit_rate"] is None
    assert report["log"] == [f"{OFF}×2: nothing planted: no module has 2 valid bugs in different functions to "
                             "combine (0 valid bug(s) at this pin)"]
