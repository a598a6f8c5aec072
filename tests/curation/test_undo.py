"""Single reviews and bulk reviews can be undone from the audit trail (page and command); the
undo is itself audited, and never silently undoes a later decision."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from episodes.curation import actions as curation
from episodes.models import AuditEvent, Bug, Repository, Review

pytestmark = pytest.mark.django_db


def make_bugs(n):
    repo = Repository.objects.create(name="shop", source="/x", pinned_commit="a" * 40)
    return [Bug.objects.create(repository=repo, base_commit="a" * 40, patch=f"p{i}", verifier="v", status="valid")
            for i in range(n)]


def review_event(bug, actor):
    return AuditEvent.objects.filter(action="review", target_id=str(bug.pk), actor=actor).latest("pk")


def test_undoing_a_review_puts_back_the_earlier_one(staff, staff_client):
    [bug] = make_bugs(1)
    bug.review(staff, verdict="approve", notes="", difficulty="easy")
    bug.review(staff, verdict="reject", notes="verifier too narrow", difficulty="hard")
    assert Bug.objects.get(pk=bug.pk).status == "rejected"
    page = staff_client.get(reverse("bug_detail", args=[bug.pk])).content.decode()
    event = review_event(bug, staff)
    assert reverse("audit_undo", args=[event.pk]) in page
    staff_client.post(reverse("audit_undo", args=[event.pk]))
    bug.refresh_from_db()
    assert (bug.status, bug.difficulty) == ("approved", "easy")  # the first review is back
    assert Review.objects.get(bug=bug, reviewer=staff).verdict == "approve"
    undo = AuditEvent.objects.get(action="undo_review")
    assert undo.actor == staff and undo.after["undoes"] == event.pk
    # undone once only
    answer = staff_client.post(reverse("audit_undo", args=[event.pk]), follow=True)
    assert b"already undone" in answer.content


def test_an_undone_first_review_leaves_the_bug_valid(staff):
    [bug] = make_bugs(1)
    bug.review(staff, verdict="approve", notes="")
    bug.undo_review(staff, review_event(bug, staff))
    bug.refresh_from_db()
    assert bug.status == "valid" and not bug.reviews.exists()


def test_a_later_review_is_never_undone_by_undoing_an_earlier_one(staff):
    [bug] = make_bugs(1)
    bug.review(staff, verdict="approve", notes="")
    first = review_event(bug, staff)
    bug.review(staff, verdict="reject", notes="no")
    with pytest.raises(ValueError, match="a later review by staffer replaced"):
        bug.undo_review(staff, first)
    assert Bug.objects.get(pk=bug.pk).status == "rejected"


def test_a_bulk_review_is_undone_from_the_bulk_page(staff, staff_client, reviewer):
    bugs = make_bugs(3)
    ids = ",".join(str(b.pk) for b in bugs)
    staff_client.post(reverse("bug_bulk_apply"), {"verdict": "approve", "ids": ids})
    assert Bug.objects.filter(status="approved").count() == 3
    bugs[2].refresh_from_db()
    bugs[2].review(staff, verdict="reject", notes="on a closer look, underspecified")  # a later decision
    event = AuditEvent.objects.get(action="bulk_review")
    page = staff_client.get(reverse("bug_bulk")).content.decode()
    assert reverse("audit_undo", args=[event.pk]) in page
    answer = staff_client.post(reverse("audit_undo", args=[event.pk]), follow=True).content.decode()
    assert "left as they are: bug %d: a later review by staffer replaced" % bugs[2].pk in answer
    assert [Bug.objects.get(pk=b.pk).status for b in bugs] == ["valid", "valid", "rejected"]
    assert "undone" in staff_client.get(reverse("bug_bulk")).content.decode()
    with pytest.raises(ValueError, match="already undone"):  # not twice
        curation.undo(staff, event)


def test_undo_is_staff_only_and_on_the_command_line(staff, reviewer_client):
    [bug] = make_bugs(1)
    bug.review(staff, verdict="approve", notes="")
    event = review_event(bug, staff)
    assert reviewer_client.post(reverse("audit_undo", args=[event.pk])).status_code == 403
    out = StringIO()
    call_command("curate", "undo", str(event.pk), "--as", "staffer", stdout=out)
    assert f"undone review {event.pk}" in out.getvalue() and Bug.objects.get(pk=bug.pk).status == "valid"
    with pytest.raises(CommandError, match="already undone"):
        call_command("curate", "undo", str(event.pk), "--as", "staffer", stdout=StringIO())
