"""Management commands: the CLI does what the UI does."""
import io
import re

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from episodes.models import Bug, Repository

pytestmark = pytest.mark.django_db


def run(*args, **kw) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **kw)
    return out.getvalue()


@pytest.mark.sqlite
def test_create_staff_prints_a_password_that_works():
    out = run("create_staff", "--username", "boss")
    password = re.search(r"password: (\S+)", out).group(1)
    user = authenticate(username="boss", password=password)
    assert user is not None and user.is_staff and user.is_superuser
    assert "unchanged" in run("create_staff", "--username", "boss", "--keep-existing")


@pytest.mark.sqlite
def test_load_sample_repo_is_idempotent(sandbox_settings, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first = run("load_sample_repo")
    second = run("load_sample_repo")
    assert "Registered" in first and "Already registered" in second
    repo = Repository.objects.get()
    assert re.fullmatch(r"[0-9a-f]{40}", repo.pinned_commit)
    assert repo.pinned_commit[:12] in second


def test_baseline_command_records_per_test_status(sample_repo):
    out = run("baseline", "cartcalc")
    repo = Repository.objects.get(name="cartcalc")
    assert repo.status == "ready"
    assert len(repo.passing_tests) >= 40  # the sample library's own suite
    assert re.search(rf"{len(repo.passing_tests)}/{len(repo.baseline_tests)} tests pass", out)
    assert all("::" in t and t.startswith("tests/test_") for t in repo.baseline_tests)
    # the coverage map knows which tests execute ShippingPolicy.band_for
    from pathlib import Path

    from episodes.engine.validate.coverage_map import tests_covering

    lines = (Path(repo.source) / "cartcalc/shipping.py").read_text().splitlines()
    start = next(i for i, line in enumerate(lines, 1) if "def band_for" in line)
    covering = tests_covering(repo.coverage, "cartcalc/shipping.py", start, start + 5)
    assert any("test_shipping.py::test_weight_bands_and_surcharge" in t for t in covering)
    assert not any(t.startswith("tests/test_rules.py") for t in covering)
    assert not any(p.startswith("tests/") for p in repo.coverage["lines"])  # tests are not targets
    with pytest.raises(CommandError, match="no repository named"):
        run("baseline", "nope")


def test_sample_bugs_get_their_verdicts_from_the_validate_command(sample_repo, settings):
    from episodes.management.commands.load_sample_repo import Command

    Command(stdout=io.StringIO())._add_sample_bugs(sample_repo)
    Bug.objects.update(status="candidate")  # the enqueued jobs are never run here
    out = run("validate", "--repo", "cartcalc", "--seed", "11", "--flake-target", "0.2")  # 14 runs a side catch the 30% flake
    verdicts = dict(Bug.objects.values_list("target", "status").filter(method="manual").exclude(target__endswith=".split"))
    assert verdicts == {
        "cartcalc/shipping.py::ShippingPolicy.band_for": "valid",
        "cartcalc/money.py::Money.allocate": "valid",
        "cartcalc/discounts.py::BuyXGetY.free_units": "valid",
        "cartcalc/discounts.py::TieredDiscount.rate_for": "valid",
        "cartcalc/shipping.py::ShippingPolicy.cost": "flaky",
    }
    docstring = Bug.objects.get(target__endswith=".split")
    assert docstring.status == "invalid" and "does not fail on buggy code" in docstring.invalid_reason
    flaky = Bug.objects.get(status="flaky")
    assert 0 < flaky.clean_passes < flaky.clean_runs and flaky.flake_upper_bound > 0.1
    assert "summary: flaky 1, invalid 1, valid 4" in out
    with pytest.raises(CommandError, match="no such bug"):
        run("validate", "999999")


def test_sandbox_check_reports_the_local_backend(sandbox_settings):
    out = run("sandbox_check")
    assert re.search(r"✓ local \(configured\)", out)
    assert "net_isolated: True" in out


def test_sweep_command_resets_stuck_bugs(sample_repo, redis_conn):
    bug = Bug.objects.create(repository=sample_repo, base_commit=sample_repo.pinned_commit, patch="p", verifier="v",
                             status="validating", validation_job_id="gone-job")
    out = run("sweep")
    bug.refresh_from_db()
    assert bug.status == "candidate" and "no longer exists" in bug.error
    assert "1 bug(s) reset" in out


def test_sweep_command_fails_training_runs_whose_job_is_gone(db, redis_conn):
    from training.models import TrainingRun

    run_ = TrainingRun.objects.create(name="orphan", method="sft", base_model="/nowhere", status="running", job_id="gone-job")
    out = run("sweep")
    run_.refresh_from_db()
    assert run_.status == "failed" and f"training run {run_.pk}: failed" in out
