"""`manage.py curate`: the page actions from the command line, as a named staff user, audited."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from episodes.models import AuditEvent, Bug, Repository, Review

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def run(*args) -> str:
    out = StringIO()
    call_command("curate", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def bugs(db):
    repo = Repository.objects.create(name="demo", source="/x", pinned_commit="a" * 40)
    return [Bug.objects.create(repository=repo, base_commit="a" * 40, patch=f"p{i}", verifier="v", status=s)
            for i, s in enumerate(["valid", "valid", "flaky", "invalid"])]


def test_review_bulk_and_list(bugs, staff, reviewer):
    with pytest.raises(CommandError, match="not a staff user"):
        run("review", str(bugs[0].pk), "--as", "reviewer", "--verdict", "approve")
    assert "now approved" in run("review", str(bugs[0].pk), "--as", "staffer", "--verdict", "approve", "--difficulty", "<15m")
    with pytest.raises(CommandError, match="cannot be reviewed"):
        run("review", str(bugs[2].pk), "--as", "staffer", "--verdict", "approve")
    assert "would reject 2 bug(s)" in run("bulk", "repository=demo", "--as", "staffer", "--verdict", "reject")
    assert Review.objects.count() == 1
    with pytest.raises(CommandError, match="a reject needs a reason"):
        run("bulk", "repository=demo", "--as", "staffer", "--verdict", "reject", "--yes")
    assert not Bug.objects.filter(status="rejected").exists()  # one transaction: nothing changed
    assert "rejected 2 bug(s)" in run("bulk", "repository=demo", "--as", "staffer", "--verdict", "reject", "--yes",
                                      "--notes", "the verifier tests an implementation detail")
    assert set(Bug.objects.filter(status="rejected").values_list("id", flat=True)) == {bugs[0].pk, bugs[1].pk}
    assert "2 bug(s) match" in run("list", "status=rejected")
    with pytest.raises(CommandError, match="bad filter"):
        run("list", "status=bogus")


def test_flaky_actions(bugs, staff, redis_conn, tmp_path):
    flaky = bugs[2]
    run("quarantine", str(flaky.pk), "--as", "staffer")
    assert "queued" in run("rerun", str(flaky.pk), "--as", "staffer", "-n", "3")
    script = tmp_path / "v.py"
    script.write_text("print('fixed')\n")
    assert "validation queued" in run("verifier", str(flaky.pk), "--as", "staffer", "--file", str(script))
    flaky.refresh_from_db()
    assert flaky.quarantined and flaky.verifier == "print('fixed')\n" and flaky.status == "validating"
    with pytest.raises(CommandError, match="only a flaky bug"):
        run("stable", str(flaky.pk), "--as", "staffer", "--reason", "ok")
    actions = list(AuditEvent.objects.filter(target_id=str(flaky.pk)).order_by("id").values_list("action", flat=True))
    assert actions == ["quarantine", "enqueue_reruns", "edit_verifier"]
