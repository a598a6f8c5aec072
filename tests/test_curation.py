"""Curation by staff: rubric reviews settle a bug, flaky verifiers are quarantined or marked
stable with a reason, and every change lands in the audit trail with before/after."""
import pytest
from django.urls import reverse

from episodes.models import AuditEvent, Bug, Repository, Review

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.fixture
def repo(db):
    return Repository.objects.create(name="demo", source="/x", pinned_commit="a" * 40, status="ready")


def bug(repo, status, patch):
    return Bug.objects.create(repository=repo, base_commit="a" * 40, patch=patch, verifier="v", status=status)


def rubric(**kw):
    return {"underspecified": "0", "rejects_valid_fixes": "0", "difficulty": "<15m", "notes": "", "verdict": "approve", **kw}


def test_reviews_settle_the_bug_by_the_verified_rule(repo, staff_client, staff, django_user_model):
    b = bug(repo, "valid", "p1")
    staff_client.post(reverse("bug_review", args=[b.pk]), rubric())
    b.refresh_from_db()
    assert b.status == "approved" and b.difficulty == "<15m"
    # a second reviewer finds the task underspecified (severity 2): the bug is dropped
    other = django_user_model.objects.create_user("second", password="x", is_staff=True)
    b.review(other, underspecified=2, rejects_valid_fixes=0, other_major_issue=False, difficulty="", notes="vague",
             verdict="approve")
    b.refresh_from_db()
    assert b.status == "rejected" and Review.objects.filter(bug=b).count() == 2
    events = list(AuditEvent.objects.filter(action="review", target_id=str(b.pk)).order_by("id"))
    assert [e.after["status"] for e in events] == ["approved", "rejected"]
    assert events[0].before["status"] == "valid" and events[0].actor == staff
    body = staff_client.get(reverse("bug_detail", args=[b.pk])).content.decode()
    assert 'id="reviews"' in body and "vague" in body and "review" in body


def test_only_valid_bugs_can_be_reviewed(repo, staff_client):
    b = bug(repo, "flaky", "p2")
    response = staff_client.post(reverse("bug_review", args=[b.pk]), rubric(), follow=True)
    assert b"cannot be reviewed" in response.content and not Review.objects.exists()
    response = staff_client.post(reverse("bug_review", args=[b.pk]), rubric(underspecified="7"), follow=True)
    assert b"Review not saved" in response.content


def test_flaky_triage_quarantine_and_mark_stable(repo, staff_client):
    b = bug(repo, "flaky", "p3")
    staff_client.post(reverse("bug_quarantine", args=[b.pk]), {"quarantined": "1", "next": "https://evil.example/"})
    b.refresh_from_db()
    assert b.quarantined
    staff_client.post(reverse("bug_mark_stable", args=[b.pk]), {"reason": ""})
    b.refresh_from_db()
    assert b.status == "flaky"  # a reason is required
    response = staff_client.post(reverse("bug_mark_stable", args=[b.pk]), {"reason": "timing test, pinned clock now"})
    assert response["Location"] == b.get_absolute_url()
    b.refresh_from_db()
    assert b.status == "valid" and b.stable_reason == "timing test, pinned clock now"
    actions = list(AuditEvent.objects.filter(target_id=str(b.pk)).values_list("action", flat=True).order_by("id"))
    assert actions == ["quarantine", "mark_stable"]
    assert AuditEvent.objects.get(action="mark_stable").before == {"status": "flaky", "stable_reason": ""}


def test_next_redirects_stay_on_site(repo, staff_client):
    b = bug(repo, "flaky", "p4")
    response = staff_client.post(reverse("bug_quarantine", args=[b.pk]), {"quarantined": "1", "next": "//evil.example/x"})
    assert response["Location"] == b.get_absolute_url()
    response = staff_client.post(reverse("bug_quarantine", args=[b.pk]), {"quarantined": "0", "next": "/flaky/"})
    assert response["Location"] == "/flaky/"
