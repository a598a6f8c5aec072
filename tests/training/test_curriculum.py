"""Curriculum (issue 16): an RL set kept to the bugs a solver solves at a rate in a band; the
others are listed in the manifest with the reason they were dropped."""
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from episodes.curation import difficulty
from training.datasets import build_rl_dataset
from training.engine import rows as engine
from training.models import Dataset

from tests.factories import make_bug, make_repo

pytestmark = pytest.mark.django_db


@pytest.fixture
def measured(db):
    repo = make_repo("lib-c")
    bugs = [make_bug(repo, n) for n in range(5)]
    plan = {0: [1, 0, 1, 0], 1: [1, 1, 1, 1], 2: [0, 0, 0], 3: [1, 0], 4: []}  # 50%, always, never, 50% (2), none
    for n, rewards in plan.items():
        for i, r in enumerate(rewards):
            difficulty.record(bugs[n].pk, "teacher:x", "episode", f"x:{n}:{i}", r)
    difficulty.record(bugs[4].pk, "teacher:other", "episode", "o:4", 1.0)  # another solver's attempt does not count
    return bugs


def test_band_keeps_the_in_band_bugs_and_lists_the_dropped(measured):
    b = measured
    ds = build_rl_dataset("cur", {"solver": "teacher:x", "band": [0.2, 0.8], "min_attempts": 3, "heldout_fraction": 0})
    rows = engine.load_jsonl(Path(ds.path) / "train.jsonl")
    assert [r["bug_id"] for r in rows] == [b[0].pk]
    assert rows[0]["solve_rate"] == 0.5 and rows[0]["solve_attempts"] == 4  # the export carries the estimate
    c = ds.manifest["curriculum"]
    assert c["solver"] == "teacher:x" and c["band"] == [0.2, 0.8] and c["kept"] == 1
    assert c["dropped_bugs"] == {
        str(b[1].pk): "always solved 4/4",
        str(b[2].pk): "never solved 0/3",
        str(b[3].pk): "unmeasured by teacher:x (2 attempts, need 3)",
        str(b[4].pk): "unmeasured by teacher:x (0 attempts, need 3)",
    }
    assert ds.manifest["dropped"]["out_of_band"] == 4
    looser = build_rl_dataset("cur2", {"solver": "teacher:x", "band": "0,100", "heldout_fraction": 0})
    assert looser.filters["band"] == [0.0, 1.0] and looser.train_rows == 2  # 0/1-rate bugs still dropped
    with pytest.raises(ValueError, match="no bugs match.*out of band"):
        build_rl_dataset("cur3", {"solver": "teacher:x", "band": [0.6, 0.9], "heldout_fraction": 0})
    with pytest.raises(ValueError, match="needs the solver"):
        build_rl_dataset("cur4", {"band": [0.2, 0.8]})
    with pytest.raises(ValueError, match="low ≤ high"):
        build_rl_dataset("cur5", {"solver": "teacher:x", "band": [0.8, 0.2]})
    assert not Dataset.objects.filter(name__in=["cur3", "cur4", "cur5"]).exists()


def test_build_dataset_command_with_a_band(measured):
    out = StringIO()
    call_command("build_dataset", "--kind", "rl", "--name", "cli-cur", "--solver", "teacher:x", "--band", "0.2,0.8",
                 "--min-attempts", "2", "--heldout-fraction", "0", stdout=out)
    ds = Dataset.objects.get(name="cli-cur")
    assert ds.train_rows == 2 and ds.filters["min_attempts"] == 2
    text = out.getvalue()
    assert "curriculum teacher:x band 20%–80%: 2 kept, 3 dropped" in text
    assert f"dropped bug {measured[1].pk}: always solved 4/4" in text


def test_dataset_form_builds_a_curriculum_set(measured, staff_client):
    response = staff_client.post("/training/datasets/build/", {
        "kind": "rl", "name": "form-cur", "provenance": "allowed", "split_by": "bug", "heldout_fraction": "0",
        "curriculum_solver": "teacher:x", "band_low": "20", "band_high": "80", "min_attempts": "3"})
    assert response.status_code in (200, 302), response.content.decode()[:2000]
    ds = Dataset.objects.get(name="form-cur")
    assert ds.filters["solver"] == "teacher:x" and ds.filters["band"] == [0.2, 0.8] and ds.train_rows == 1
    page = staff_client.get(f"/training/datasets/{ds.pk}/").content.decode()
    assert "Curriculum for teacher:x" in page and "always solved 4/4" in page
