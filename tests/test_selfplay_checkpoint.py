"""Self-play with a ``checkpoint:`` solver: the tiny offline model, served by
``training.engine.serve`` in a child process, attempts real planted bugs as the built-in agent and
is graded in the real sandbox; such a self-play is queued on `train`; a bad path is refused."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from episodes.injection import selfplay
from episodes.models import Bug, SelfPlay, SolveAttempt


@pytest.fixture
def tiny_model(settings):
    from training.tiny import make_tiny_model

    return str(make_tiny_model(Path(settings.VAR_DIR) / "models" / "tiny-test"))


@pytest.mark.django_db(transaction=True)  # the model server is another process
def test_a_checkpoint_attempts_planted_bugs_through_the_local_server(sample_repo, tiny_model, settings, staff_client):
    settings.BUGFORGE_SELFPLAY_CHECKPOINT = {"max_steps": 2, "max_new_tokens": 16}
    solver = f"checkpoint:{tiny_model}"
    assert selfplay.solver_problem(solver) == ""
    sp = selfplay.start(sample_repo, solver, rounds=1, bugs_per_round=1, attempts_per_bug=2, seed=4,
                        operators=["flip_comparison"], sizes=(1,), sync=True)
    assert sp.status == SelfPlay.Status.DONE, sp.error
    [report] = sp.rounds
    [row] = report["rates"]
    assert row["valid"], report  # a flip_comparison bug in cartcalc, validated inline
    # a random tiny model fixes nothing: both attempts graded 0, under the self-play key, by this solver
    assert (row["attempts"], row["successes"], row["in_band"]) == (2, 0, False)
    rows = SolveAttempt.objects.filter(bug_id=row["bug"])
    assert sorted(rows.values_list("key", "solver", "source", "reward")) == [
        (f"selfplay:{sp.pk}:1:{row['bug']}:{a}", solver, "selfplay", 0.0) for a in (1, 2)]
    bug = Bug.objects.get(pk=row["bug"])
    assert (bug.solve_attempts, bug.solve_successes, bug.solve_rate) == (2, 0, 0.0)
    assert report["hit_rate"] == 0.0
    server_log = Path(settings.VAR_DIR) / "selfplay" / f"{sp.pk}-round1-server.log"
    assert server_log.is_file()  # the served model's own log, kept per round
    assert staff_client.get(reverse("selfplay_detail", args=[sp.pk])).status_code == 200


@pytest.mark.django_db(transaction=True)  # the enqueue waits for the commit
def test_a_checkpoint_selfplay_is_queued_on_train_and_a_bad_path_is_refused(sample_repo, tiny_model, tmp_path,
                                                                            redis_conn):
    import django_rq

    sp = selfplay.start(sample_repo, f"checkpoint:{tiny_model}", rounds=1, bugs_per_round=1, attempts_per_bug=1)
    assert sp.job_id in django_rq.get_queue("train").job_ids
    assert sp.job_id not in django_rq.get_queue("inject").job_ids
    with pytest.raises(selfplay.SelfPlayError, match="holds no saved model"):
        selfplay.start(sample_repo, f"checkpoint:{tmp_path}", rounds=1)
    with pytest.raises(selfplay.SelfPlayError, match="no saved model for 'checkpoint:run-999999'"):
        selfplay.start(sample_repo, "checkpoint:run-999999", rounds=1)
    assert SelfPlay.objects.count() == 1
