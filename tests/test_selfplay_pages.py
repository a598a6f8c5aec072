"""Self-play on the real sample repository with a scripted (test-only) solver: real procedural
injection with inline validation, SolveAttempt rows, round reports; and its pages."""
from __future__ import annotations

import pytest
from django.urls import reverse

from episodes.injection import selfplay
from episodes.engine.inject.selfplay import ScriptedSolver
from episodes.models import Bug, SelfPlay, SolveAttempt

OPERATORS = ["flip_comparison", "off_by_one", "change_operator"]


@pytest.fixture
def scripted(monkeypatch):
    solver = ScriptedSolver({"procedural:flip_comparison": 0.9, "procedural:off_by_one": 0.5,
                             "procedural:change_operator": 0.1})
    monkeypatch.setitem(selfplay.SCRIPTED_SOLVERS, "known", solver)
    return solver


@pytest.mark.django_db
def test_scripted_selfplay_on_the_sample_repo(sample_repo, scripted, staff_client, reviewer_client):
    sp = selfplay.start(sample_repo, "scripted:known", band=(0.2, 0.8), rounds=2, bugs_per_round=3,
                        attempts_per_bug=2, seed=11, operators=OPERATORS, sizes=(1,), sync=True)
    assert sp.status == SelfPlay.Status.DONE, sp.error
    assert [r["round"] for r in sp.rounds] == [1, 2]
    planted = Bug.objects.filter(provenance__selfplay=sp.pk)
    assert planted.count() == sum(r["planted"] for r in sp.rounds) > 0
    for report in sp.rounds:
        assert sum(report["allocation"].values()) == 3
        assert report["valid"] <= report["planted"] <= 3
        ids = [row["bug"] for row in report["rates"] if row["bug"] is not None]
        assert set(Bug.objects.filter(pk__in=ids).values_list("provenance__round", flat=True)) == {report["round"]}
        for row in report["rates"]:
            if row["valid"]:
                rows = SolveAttempt.objects.filter(bug_id=row["bug"], source="selfplay", solver="scripted:known")
                assert rows.count() == 2
                assert sum(a.reward > 0.5 for a in rows) == row["successes"]
                assert all(a.key.startswith(f"selfplay:{sp.pk}:{report['round']}:{row['bug']}:") for a in rows)
                assert row["in_band"] == (0.2 <= row["successes"] / 2 <= 0.8)
                bug = Bug.objects.get(pk=row["bug"])
                assert bug.solve_attempts == 2 and bug.solve_successes == row["successes"]
            if row["bug"] is not None:
                assert Bug.objects.get(pk=row["bug"]).operator == row["arm"].split(":")[1]
    valid = sum(r["valid"] for r in sp.rounds)
    assert valid > 0
    assert SolveAttempt.objects.filter(key__startswith=f"selfplay:{sp.pk}:").count() == 2 * valid
    assert set(sp.policy["weights"]) == {f"procedural:{op}×1" for op in OPERATORS}
    assert sp.policy == sp.rounds[-1]["policy"]

    # the pages: staff and reviewers see them; only staff may start one
    page = staff_client.get(reverse("selfplay_detail", args=[sp.pk]))
    assert page.status_code == 200
    assert b"selfplay-chart" in page.content and b"Band hit rate per round" in page.content
    assert reviewer_client.get(reverse("selfplay_list")).status_code == 200
    listing = staff_client.get(reverse("selfplay_list"))
    assert listing.status_code == 200 and b"scripted:known" in listing.content and b"Start a self-play" in listing.content
    assert staff_client.get(reverse("selfplay_progress", args=[sp.pk])).status_code == 200
    before = SelfPlay.objects.count()
    form = {"repository": sample_repo.pk, "solver": "scripted:known", "band_low": 0.2, "band_high": 0.8,
            "rounds": 1, "bugs_per_round": 1, "attempts_per_bug": 1}
    assert reviewer_client.post(reverse("selfplay_start"), form).status_code == 403
    assert SelfPlay.objects.count() == before


@pytest.mark.django_db(transaction=True)  # the enqueue waits for the commit
def test_start_form_queues_on_inject_and_rejects_bad_input(sample_repo, scripted, staff_client, redis_conn):
    import django_rq

    bad = staff_client.post(reverse("selfplay_start"), {"repository": sample_repo.pk, "solver": "teacher:nobody",
                                                         "band_low": 0.9, "band_high": 0.1, "rounds": 1,
                                                         "bugs_per_round": 1, "attempts_per_bug": 1})
    assert bad.status_code == 400 and b"no teacher named" in bad.content and b"must not be below its low end" in bad.content
    assert not SelfPlay.objects.exists()
    ok = staff_client.post(reverse("selfplay_start"), {"repository": sample_repo.pk, "solver": "scripted:known",
                                                        "band_low": 0.2, "band_high": 0.8, "rounds": 1,
                                                        "bugs_per_round": 1, "attempts_per_bug": 1})
    sp = SelfPlay.objects.get()
    assert ok.status_code == 302 and ok["Location"] == reverse("selfplay_detail", args=[sp.pk])
    assert sp.job_id in django_rq.get_queue("inject").job_ids
    page = staff_client.get(reverse("selfplay_detail", args=[sp.pk]))
    assert b'hx-trigger="every 3s"' in page.content  # live refresh while queued


@pytest.mark.django_db
def test_selfplay_command(sample_repo, scripted):
    from io import StringIO

    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="no teacher named"):
        call_command("selfplay", "cartcalc", "--solver", "teacher:nobody")
    out = StringIO()
    call_command("selfplay", "cartcalc", "--solver", "scripted:known", "--band", "0.2,0.8", "--rounds", "1",
                 "--bugs-per-round", "2", "--attempts", "2", "--sizes", "1", "--seed", "3", stdout=out)
    sp = SelfPlay.objects.get()
    assert sp.status == SelfPlay.Status.DONE and len(sp.rounds) == 1
    assert "round 1: planted" in out.getvalue() and f"self-play {sp.pk}: done" in out.getvalue()
