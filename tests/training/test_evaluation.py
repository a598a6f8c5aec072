"""pass@k maths, SWE-bench patch reversal, evaluations (existing episodes; a checkpoint served
locally and run as the built-in agent on a held-out bug in the real sandbox)."""
import math

import pytest

from episodes.models import Bug, Teacher
from training import evaluations
from training.engine import eval_maths as ev_maths
from training.engine import swebench
from training.models import Evaluation

from tests.factories import make_episode


def test_pass_at_k_is_unbiased_and_bounded():
    assert ev_maths.pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert ev_maths.pass_at_k(10, 3, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))
    assert ev_maths.pass_at_k(5, 0, 3) == 0.0 and ev_maths.pass_at_k(5, 3, 3) == 1.0
    with pytest.raises(ValueError):
        ev_maths.pass_at_k(3, 1, 4)
    # Monte Carlo agreement: the estimator's mean over draws of n equals 1-(1-p)^k
    import random

    rng, p, n, k = random.Random(0), 0.3, 8, 4
    draws = [ev_maths.pass_at_k(n, sum(rng.random() < p for _ in range(n)), k) for _ in range(20000)]
    assert sum(draws) / len(draws) == pytest.approx(1 - (1 - p) ** k, abs=0.01)


def test_intervals_match_known_values():
    assert ev_maths.wilson(3, 10) == pytest.approx((0.1078, 0.6032), abs=1e-4)
    assert ev_maths.clopper_pearson(3, 10) == pytest.approx((0.0667, 0.6525), abs=1e-4)
    assert ev_maths.clopper_pearson(0, 5)[1] == pytest.approx(1 - 0.025 ** (1 / 5))
    assert ev_maths.clopper_pearson(5, 5) == pytest.approx((0.025 ** (1 / 5), 1.0))


def test_report_groups_by_repository_and_difficulty():
    attempts = [
        {"bug_id": 1, "repository": "a", "difficulty": "<15m", "reward": 1.0},
        {"bug_id": 1, "repository": "a", "difficulty": "<15m", "reward": 0.0},
        {"bug_id": 2, "repository": "b", "difficulty": "", "reward": 0.0},
        {"bug_id": 2, "repository": "b", "difficulty": "", "reward": 0.0},
    ]
    report = ev_maths.report(attempts, ks=(1, 2))
    assert report["overall"]["pass@1"] == pytest.approx(0.25)
    assert report["overall"]["pass@2"] == pytest.approx(0.5)
    assert report["by_repository"]["a"]["pass@1"] == pytest.approx(0.5)
    assert report["by_difficulty"]["unrated"]["bugs_solved"] == 0
    lo, hi = report["overall"]["pass@1_clopper_pearson"]
    assert lo < 0.25 < hi


def test_reverse_patch_round_trip():
    patch = ("diff --git a/m.py b/m.py\nindex 1111111..2222222 100644\n--- a/m.py\n+++ b/m.py\n"
             "@@ -1,3 +1,3 @@ def f():\n a\n-if x <= y:\n+if x < y:\n c\n")
    reverse = swebench.reverse_patch(patch)
    assert "-if x < y:\n+if x <= y:\n" in reverse and "@@ -1,3 +1,3 @@ def f():" in reverse
    assert swebench.reverse_patch(reverse) == patch
    new_file = "diff --git a/n.py b/n.py\nnew file mode 100644\n--- /dev/null\n+++ b/n.py\n@@ -0,0 +1 @@\n+x\n"
    gone = swebench.reverse_patch(new_file)
    assert "deleted file mode" in gone and "+++ /dev/null" in gone and "--- a/n.py" in gone


# The SWE-bench export and its round trip: tests/training/test_swebench_export.py


def test_foreign_swebench_instances_get_a_verifier_and_bad_ones_are_reported():
    foreign = {"instance_id": "o__r-1", "repo": "o/r", "base_commit": "a" * 40,
               "patch": "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-bad\n+good\n",
               "FAIL_TO_PASS": '["tests/test_x.py::test_one"]', "PASS_TO_PASS": "[]"}
    data = swebench.from_instance(foreign)
    assert "-good\n+bad" in data["patch"] and "tests/test_x.py::test_one" in data["verifier"]
    with pytest.raises(ValueError, match="no verifier and no FAIL_TO_PASS"):
        swebench.from_instance({**foreign, "FAIL_TO_PASS": "[]"})
    with pytest.raises(ValueError, match="missing base_commit"):
        swebench.from_instance({**foreign, "base_commit": ""})


@pytest.mark.django_db
def test_episode_evaluation_and_comparison_table(sft_dataset):
    teacher = Teacher.objects.create(name="t2", terms_allow_training=True)
    [held] = Bug.objects.filter(pk__in=sft_dataset.heldout_bug_ids)
    make_episode(held, teacher, reward=1.0)
    make_episode(held, teacher, reward=0.0)
    ev = Evaluation.objects.create(name="teacher episodes", subject="episodes", teacher=teacher,
                                   dataset=sft_dataset, k=2)
    evaluations.validate(ev)
    assert evaluations.run_evaluation(ev.pk) == "succeeded"
    ev.refresh_from_db()
    assert ev.results["overall"]["pass@1"] == pytest.approx(0.5)
    assert ev.results["overall"]["pass@2"] == pytest.approx(1.0)
    [row] = evaluations.comparison(sft_dataset)
    assert row["role"] == "teacher" and row["pass1"] == pytest.approx(0.5) and row["passk"] == pytest.approx(1.0)


@pytest.mark.django_db(transaction=True)
def test_checkpoint_runs_as_the_built_in_agent_on_heldout_bugs(tiny_model, approved_bug, settings):
    """The tiny model, served by the local OpenAI-compatible server, works on a held-out bug
    through the episodes' agent loop and grader: it cannot fix it, so pass@1 is 0 — but every
    attempt is made, graded and counted."""
    from training.datasets import build_rl_dataset

    ds = build_rl_dataset("rl-eval", {"heldout_bugs": [approved_bug.pk]})
    assert (ds.train_rows, ds.heldout_bug_ids) == (0, [approved_bug.pk])
    ev = Evaluation.objects.create(name="base", subject="base", model_path=tiny_model, dataset=ds, k=2,
                                   options={"max_steps": 2, "max_new_tokens": 16})
    assert evaluations.run_evaluation(ev.pk) == "succeeded", Evaluation.objects.get(pk=ev.pk).error
    ev.refresh_from_db()
    assert ev.progress == {"done": 2, "total": 2}
    assert [a["attempt"] for a in ev.attempts] == [1, 2]
    assert all(a["reward"] == 0.0 and a["exit_reason"] in ("finished", "step_limit") for a in ev.attempts)
    assert ev.results["overall"]["pass@1"] == 0.0 and ev.results["overall"]["attempts"] == 2

    # A teacher endpoint (a real local HTTP server speaking Chat Completions) that makes the
    # right edit and submits: graded like an episode, pass@1 = 1; the table puts it beside the base.
    from episodes.engine.repos.samples import SAMPLE_BUGS
    from episodes.models import LLMEndpoint
    from tests.llm.fake_upstream import FakeUpstream, Reply

    sample = SAMPLE_BUGS[0]
    with FakeUpstream() as up:
        up.script(Reply(tool_calls=[{"name": "edit", "arguments": {"path": sample.path, "old": sample.new,
                                                                    "new": sample.old}}]),
                  Reply(tool_calls=[{"name": "submit", "arguments": {}}]))
        endpoint = LLMEndpoint.objects.create(name="fake", protocol="openai_chat", base_url=up.url, model="m",
                                              api_key="sk-test")
        teacher = Teacher.objects.create(name="scripted", endpoint=endpoint, terms_allow_training=True)
        tev = Evaluation.objects.create(name="teacher", subject="teacher", teacher=teacher, dataset=ds, k=1)
        evaluations.validate(tev)
        assert evaluations.run_evaluation(tev.pk) == "succeeded"
    tev.refresh_from_db()
    assert tev.attempts[0]["exit_reason"] == "submitted" and tev.attempts[0]["reward"] == 1.0, tev.attempts
    assert tev.results["by_repository"]["cartcalc"]["pass@1"] == 1.0
    table = evaluations.comparison(ds)
    assert [(r["role"], r["pass1"]) for r in table] == [("teacher", 1.0), ("base", 0.0)]
    # both evaluations' attempts are the bug's measured difficulty, per solver and overall
    from episodes.curation.difficulty import per_solver

    assert {s: (e.successes, e.attempts) for s, e in per_solver(approved_bug.pk).items()} == {
        f"checkpoint:{tiny_model}": (0, 2), "teacher:scripted": (1, 1)}
    approved_bug.refresh_from_db()
    assert (approved_bug.solve_successes, approved_bug.solve_attempts) == (1, 3)
