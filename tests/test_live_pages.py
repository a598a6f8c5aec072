"""Pages that show work in progress keep updating until it ends: an injection batch's row while
its bugs validate (then the page reloads once, so its figures catch up), a bug list row's
status while the bug validates."""
import pytest

from episodes.models import Bug, InjectionBatch, Repository

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def repo():
    return Repository.objects.create(name="r", source="/x", pinned_commit="a" * 40, status="ready")


def bug(repo, n, status, batch=None):
    return Bug.objects.create(repository=repo, base_commit="a" * 40, patch=f"p{n}", verifier="v", status=status,
                              batch=batch)


def test_a_done_batch_keeps_polling_while_its_bugs_validate_then_reloads_the_page(repo, reviewer_client):
    batch = InjectionBatch.objects.create(repository=repo, method="procedural", requested=2, produced=2, status="done")
    _, second = bug(repo, 1, "valid", batch), bug(repo, 2, "validating", batch)
    row = reviewer_client.get(f"/batches/{batch.pk}/progress/", **HTMX)
    assert 'hx-trigger="every 2s"' in row.content.decode() and "1 validating" in row.content.decode()
    assert "HX-Refresh" not in row
    page = reviewer_client.get(f"/repositories/{repo.pk}/").content.decode()
    assert f'id="batch-{batch.pk}" hx-get' in page
    Bug.objects.filter(pk=second.pk).update(status="invalid")
    row = reviewer_client.get(f"/batches/{batch.pk}/progress/", **HTMX)
    assert row["HX-Refresh"] == "true" and 'hx-trigger' not in row.content.decode()
    assert ">1</a>" in row.content.decode()  # the valid one, counted


def test_a_bug_list_row_follows_its_validation(repo, reviewer_client):
    b = bug(repo, 1, "validating")
    page = reviewer_client.get("/bugs/").content.decode()
    assert f'hx-get="/bugs/{b.pk}/status-cell/"' in page
    Bug.objects.filter(pk=b.pk).update(status="valid")
    cell = reviewer_client.get(f"/bugs/{b.pk}/status-cell/", **HTMX).content.decode()
    assert "status-valid" in cell and "hx-get" not in cell


def test_the_flaky_page_figures_follow_the_runs_while_a_rerun_runs(repo, reviewer_client, monkeypatch):
    from django.utils import timezone

    from episodes.curation import actions as curation
    from episodes.models import VerificationRun

    b = bug(repo, 1, "flaky")
    Bug.objects.filter(pk=b.pk).update(clean_runs=1, clean_passes=1, buggy_runs=1, buggy_fails=1)  # the last job's
    for outcome in ("passed", "failed", "passed"):  # reruns of the clean code arriving
        VerificationRun.objects.create(bug=b, repository=repo, code="clean", scope="verifier", outcome=outcome)
    monkeypatch.setattr(curation, "rerun_progress",
                        lambda bug, counted: curation.RerunProgress(5, 3, 10, "started", timezone.now()))
    live = reviewer_client.get(f"/flaky/{b.pk}/live/", **HTMX).content.decode()
    assert '<dd id="clean-figure">2/3 pass</dd>' in live  # the runs so far, not the stored 1/1
    assert Bug.objects.get(pk=b.pk).clean_runs == 1  # nothing saved by looking
