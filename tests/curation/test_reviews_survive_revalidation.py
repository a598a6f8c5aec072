"""Curation is never lost: validating a reviewed bug again keeps its reviews and their outcome
when the new verdict is still valid, and says why the outcome lapsed when it is not."""
import pytest

from episodes.engine.validate.validator import Verdict
from episodes.models import AuditEvent, Bug, Repository

pytestmark = pytest.mark.django_db


@pytest.fixture
def approved(staff):
    repo = Repository.objects.create(name="r", source="/x", pinned_commit="a" * 40)
    bug = Bug.objects.create(repository=repo, base_commit="a" * 40, patch="p", verifier="v", status="valid",
                             fail_to_pass=["t::a"])
    bug.review(staff, verdict="approve", notes="", difficulty="easy")
    assert bug.status == "approved"
    return bug


def test_a_valid_verdict_again_keeps_the_approval(approved):
    approved.status = "validating"  # what "Validate again" does first
    approved.save()
    approved.apply_verdict(Verdict("valid", fail_to_pass=["t::a"]))
    approved.refresh_from_db()
    assert (approved.status, approved.difficulty, approved.reviews.count()) == ("approved", "easy", 1)
    assert AuditEvent.objects.filter(action="review_outcome_kept", target_id=str(approved.pk)).exists()


def test_a_rejection_survives_too(approved, reviewer):
    approved.review(reviewer, verdict="reject", notes="the issue text gives the fix away")
    approved.apply_verdict(Verdict("valid", fail_to_pass=["t::a"]))
    assert Bug.objects.get(pk=approved.pk).status == "rejected"


def test_an_invalid_verdict_says_why_the_approval_lapsed_and_keeps_the_reviews(approved):
    approved.apply_verdict(Verdict("flaky", reason="the verifier disagreed with itself on clean code"))
    approved.refresh_from_db()
    assert approved.status == "flaky" and approved.reviews.count() == 1
    assert approved.invalid_reason.startswith("the verifier disagreed with itself on clean code — its review outcome lapsed")
    event = AuditEvent.objects.get(action="review_outcome_lapsed", target_id=str(approved.pk))
    assert "lapsed" in event.after["reason"]
    approved.apply_verdict(Verdict("valid", fail_to_pass=["t::a"]))  # valid again: the approval is back
    assert Bug.objects.get(pk=approved.pk).status == "approved"


def test_an_unreviewed_bug_is_just_valid(approved):
    approved.reviews.all().delete()
    approved.apply_verdict(Verdict("valid"))
    assert Bug.objects.get(pk=approved.pk).status == "valid"
    assert not AuditEvent.objects.filter(action__startswith="review_outcome").exists()


def test_a_reject_needs_a_reason(approved, reviewer):
    with pytest.raises(ValueError, match="a reject needs a reason"):
        approved.review(reviewer, verdict="reject", notes="   ")
    assert Bug.objects.get(pk=approved.pk).status == "approved"
