"""Measured difficulty (issue 16): graded attempts become SolveAttempt rows, each bug's solve rate
has a Clopper–Pearson interval, and the bug page and list show, filter and sort by it."""
import json
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from episodes.curation import difficulty
from episodes.engine.solve.reward import Grade
from episodes.models import Bug, Episode, SolveAttempt, Teacher
from episodes.solving.episodes import Attempt, _store
from tests.factories import make_bug, make_repo
from training.models import Dataset, Evaluation

pytestmark = pytest.mark.django_db


@pytest.fixture
def bugs(db):
    repo = make_repo("lib-d")
    return [make_bug(repo, n) for n in range(3)]


@pytest.fixture
def teacher(db):
    return Teacher.objects.create(name="sonnet")


def finish(episode, reward: bool, exit_reason="submitted", error=""):
    """The solver's own storing step, as after a real attempt: the grade, the outcome, the row."""
    _store(episode, Attempt(exit_reason=exit_reason, error=error), Grade(reward=reward, reason="graded"))
    episode.refresh_from_db()
    return episode


def test_graded_episodes_are_recorded_and_error_episodes_are_not(bugs, teacher):
    bug = bugs[0]
    solved = finish(Episode.objects.create(bug=bug, teacher=teacher), True)
    unsolved = finish(Episode.objects.create(bug=bug, teacher=teacher), False)
    crashed = finish(Episode.objects.create(bug=bug, teacher=teacher), False, exit_reason="error", error="harness died")
    assert (solved.status, unsolved.status, crashed.status) == ("solved", "unsolved", "failed")
    rows = SolveAttempt.objects.filter(bug=bug).order_by("pk")
    assert [(r.key, r.solver, r.source, r.reward) for r in rows] == [
        (f"episode:{solved.pk}", "teacher:sonnet", "episode", 1.0),
        (f"episode:{unsolved.pk}", "teacher:sonnet", "episode", 0.0),
    ]
    bug.refresh_from_db()
    assert (bug.solve_attempts, bug.solve_successes, bug.solve_rate) == (2, 1, 0.5)
    # recording again (a re-store, a backfill) adds nothing
    assert difficulty.record_episode(solved.pk) is False
    assert difficulty.record_episode(crashed.pk) is False
    assert SolveAttempt.objects.filter(bug=bug).count() == 2


def test_the_command_backfills_episodes_graded_before_recording(bugs, teacher):
    old = Episode.objects.create(bug=bugs[2], teacher=teacher, reward=1.0, status="solved", exit_reason="submitted")
    Episode.objects.create(bug=bugs[2], teacher=teacher, reward=0.0, status="failed", exit_reason="error")
    Episode.objects.create(bug=bugs[2], teacher=teacher)  # still running: no reward yet
    out = StringIO()
    call_command("difficulty", stdout=out)
    assert out.getvalue().startswith("1 attempts recorded that were not yet")
    assert list(SolveAttempt.objects.values_list("key", flat=True)) == [f"episode:{old.pk}"]
    call_command("difficulty", stdout=StringIO())
    assert SolveAttempt.objects.count() == 1 and Bug.objects.get(pk=bugs[2].pk).solve_rate == 1.0


def test_interval_values_are_clopper_pearson():
    e = difficulty.estimate(3, 8)
    assert (e.attempts, e.successes, e.rate) == (8, 3, 0.375)
    assert e.low == pytest.approx(0.0852, abs=1e-3) and e.high == pytest.approx(0.7551, abs=1e-3)
    assert difficulty.fmt(e) == "3/8 = 38% (95% CI 9–76%)"
    all_of = difficulty.estimate(4, 4)
    assert all_of.high == 1.0 and all_of.low == pytest.approx(0.3976, abs=1e-3)
    assert difficulty.fmt(difficulty.estimate(0, 0)) == "unmeasured"


def test_evaluation_attempts_are_recorded_per_subject(bugs, teacher):
    ds = Dataset.objects.create(name="d", kind="rl", path="/nonexistent")
    attempts = [{"bug_id": bugs[0].pk, "attempt": 1, "reward": 1.0}, {"bug_id": bugs[0].pk, "attempt": 2, "reward": 0.0},
                {"bug_id": bugs[1].pk, "attempt": 1, "reward": 0.0}, {"bug_id": bugs[1].pk, "attempt": 2, "reward": 0.0}]
    ev = Evaluation.objects.create(name="student", subject="checkpoint", model_path="/models/run7/final", dataset=ds, k=2,
                                   attempts=attempts)
    assert difficulty.record_evaluation(ev) == 4
    assert difficulty.record_evaluation(ev) == 0  # idempotent
    assert set(SolveAttempt.objects.values_list("key", flat=True)) == {
        f"evaluation:{ev.pk}:{bugs[0].pk}:1", f"evaluation:{ev.pk}:{bugs[0].pk}:2",
        f"evaluation:{ev.pk}:{bugs[1].pk}:1", f"evaluation:{ev.pk}:{bugs[1].pk}:2"}
    assert set(SolveAttempt.objects.values_list("solver", flat=True)) == {"checkpoint:/models/run7/final"}
    t = Evaluation.objects.create(name="teacher", subject="teacher", teacher=teacher, dataset=ds, k=1,
                                  attempts=[{"bug_id": bugs[0].pk, "attempt": 1, "reward": 1.0}])
    assert difficulty.record_evaluation(t) == 1
    # counting existing episodes records nothing new: those episodes are recorded already
    again = Evaluation.objects.create(name="eps", subject="episodes", teacher=teacher, dataset=ds, k=1, attempts=attempts)
    assert difficulty.record_evaluation(again) == 0
    per = difficulty.per_solver(bugs[0].pk)
    assert {s: (e.successes, e.attempts) for s, e in per.items()} == {
        "checkpoint:/models/run7/final": (1, 2), "teacher:sonnet": (1, 1)}
    Bug.objects.filter(pk=bugs[0].pk).update(solve_rate=None)  # stale: the command recomputes
    out = StringIO()
    call_command("difficulty", stdout=out)
    assert "0 attempts recorded that were not yet; recomputed 3 bugs: 2 measured, 1 unmeasured" in out.getvalue()
    assert Bug.objects.get(pk=bugs[0].pk).solve_rate == pytest.approx(2 / 3)
    out = StringIO()
    call_command("difficulty", "--bug", str(bugs[0].pk), stdout=out)
    text = out.getvalue()
    assert f"bug {bugs[0].pk}: 2/3 = 67% (95% CI" in text
    assert "checkpoint:/models/run7/final: 1/2 = 50%" in text and "teacher:sonnet: 1/1 = 100%" in text
    with pytest.raises(CommandError, match="no bug 999999"):
        call_command("difficulty", "--bug", "999999")


def test_grpo_rollouts_are_ingested_once(bugs, tmp_path):
    path = tmp_path / "rollouts.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"bug_id": bugs[0].pk, "reward": 1.0}, {"bug_id": bugs[0].pk, "reward": 0.0},
        {"bug_id": 999999, "reward": 1.0}]) + "\n" + '{"bug_id": ')  # an unknown bug; a line cut short
    assert difficulty.ingest_rollouts(7, path) == 2
    assert difficulty.ingest_rollouts(7, path) == 0
    assert sorted(SolveAttempt.objects.values_list("key", "solver", "source")) == [
        ("grpo:7:1", "checkpoint:run-7", "grpo"), ("grpo:7:2", "checkpoint:run-7", "grpo")]


def _ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<a href="/bugs/(\d+)/', html)]


def test_bug_page_and_list_show_filter_and_sort_by_solve_rate(bugs, teacher, staff_client):
    a, b, c = bugs
    for i, reward in enumerate([1, 0, 0, 1, 0, 1, 0, 0]):  # 3/8
        difficulty.record(a.pk, "teacher:sonnet", "episode", f"t:{i}", reward)
    difficulty.record(a.pk, "checkpoint:run-1", "grpo", "g:1", 1.0)
    for i in range(4):
        difficulty.record(b.pk, "teacher:sonnet", "episode", f"b:{i}", 1.0)  # 4/4
    Bug.objects.filter(pk=a.pk).update(realism=0.9)
    Bug.objects.filter(pk=b.pk).update(realism=0.3)
    page = staff_client.get(f"/bugs/{a.pk}/").content.decode()
    assert "measured solve rate 4/9 = 44% (95% CI 14–79%)" in page
    assert "teacher:sonnet" in page and "3/8 = 38% (95% CI 9–76%)" in page and "checkpoint:run-1" in page
    assert "unmeasured" in staff_client.get(f"/bugs/{c.pk}/").content.decode()

    def listed(**params):
        response = staff_client.get("/bugs/", params)
        assert response.status_code == 200
        return _ids(response.content.decode())

    assert listed(sort="-solve") == [b.pk, a.pk, c.pk]  # unmeasured sorts below every measured bug
    assert listed(sort="solve") == [c.pk, a.pk, b.pk]
    assert listed(min_solve="20", max_solve="80") == [a.pk]
    assert listed(min_solve="90") == [b.pk]
    assert listed(measured="unmeasured") == [c.pk]
    assert listed(min_realism="0.5") == [a.pk]
    assert listed(sort="-realism") == [a.pk, b.pk, c.pk]
    html = staff_client.get("/bugs/", {"sort": "-solve"}).content.decode()
    assert "4/4 = 100%" in html and "4/9 = 44%" in html and "solve rate" in html and "realism" in html
