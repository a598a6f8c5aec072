"""A stricter flake-rate target for one bug or a filter: staff only, queued and audited from
the bug page and the bug list; the job itself (real sandbox) reruns sequentially until the
bug is stable at the new target, and `manage.py stabilize` does the same from the shell."""
import io

import django_rq
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from episodes.validation import jobs
from episodes.models import AuditEvent, Bug

from ..test_jobs import boundary_patch, burst, make_bug

pytestmark = pytest.mark.django_db(transaction=True)


def queued(redis_conn):
    return [job.args for job in django_rq.get_queue("verify").jobs]


def test_bug_page_queues_a_stricter_target_for_staff_only(sample_repo, redis_conn, staff_client, reviewer_client):
    bug = make_bug(sample_repo, status="valid", flake_upper_bound=0.63, flake_target=0.7)
    page = staff_client.get(reverse("bug_detail", args=[bug.pk])).content.decode()
    assert 'id="stabilize-form"' in page and "not stable at the RL target 50.0%" in page
    assert reviewer_client.post(reverse("bug_stabilize", args=[bug.pk]), {"target_percent": "1"}).status_code == 403
    staff_client.post(reverse("bug_stabilize", args=[bug.pk]), {"target_percent": "1"})
    assert queued(redis_conn) == [(bug.pk, 0.01)]
    event = AuditEvent.objects.get(action="enqueue_stabilize")
    assert event.before == {"flake_target": 0.7, "flake_upper_bound": 0.63} and event.after["flake_target"] == 0.01
    response = staff_client.post(reverse("bug_stabilize", args=[bug.pk]), {"target_percent": "150"}, follow=True)
    assert "between 0 and 100" in response.content.decode() and len(queued(redis_conn)) == 1


def test_bug_list_queues_every_valid_bug_of_the_filter_not_yet_stable(sample_repo, redis_conn, staff_client):
    loose = make_bug(sample_repo, status="valid", operator="a", flake_upper_bound=0.45, method="procedural")
    already = make_bug(sample_repo, status="approved", operator="b", flake_upper_bound=0.004, method="procedural",
                       patch=boundary_patch(sample_repo, "if weight_grams < band.max_grams + 0:"))
    other_method = make_bug(sample_repo, status="valid", flake_upper_bound=0.45, method="llm_modify",
                            patch=boundary_patch(sample_repo, "if weight_grams + 1 < band.max_grams:"))
    staff_client.post(reverse("bugs_stabilize") + "?method=procedural", {"target_percent": "1"})
    assert queued(redis_conn) == [(loose.pk, 0.01)]  # not the one already < 1%, not another method's
    assert {already.pk, other_method.pk}.isdisjoint({args[0] for args in queued(redis_conn)})


def test_invalid_reason_filter_on_the_bug_list(sample_repo, staff_client):
    hang = make_bug(sample_repo, status="invalid", invalid_kind="timeout_buggy")
    body = staff_client.get(reverse("bug_list"), {"reason": "timeout_buggy"}).content.decode()
    assert f'data-pk="{hang.pk}"' in body
    assert f'data-pk="{hang.pk}"' not in staff_client.get(reverse("bug_list"), {"reason": "no_tests_ran"}).content.decode()


def test_stabilize_job_reruns_until_the_new_target(sample_repo, redis_conn, settings):
    settings.BUGFORGE_FLAKE_TARGET = 0.5  # validated: 5 runs a side, "< 45%"
    bug = make_bug(sample_repo)
    assert jobs.validate_bug(bug.pk) == "valid"
    bug.refresh_from_db()
    assert (bug.clean_runs, bug.buggy_runs) == (5, 5) and not bug.stable_at(0.2)
    jobs.enqueue_stabilize(bug, 0.2)
    burst()
    bug.refresh_from_db()
    assert bug.status == "valid" and (bug.clean_runs, bug.buggy_runs) == (14, 14)  # 9 more a side, no more
    assert bug.flake_target == 0.2 and bug.stable_at(0.2) and "stable at < 20%" in bug.flakiness_summary
    assert bug.runs.filter(purpose="flakiness", scope="verifier").count() == 18 + 8  # 4 + 4 from validation


def test_stabilize_command(sample_repo, settings):
    settings.BUGFORGE_FLAKE_TARGET = 0.99
    bug = make_bug(sample_repo)
    assert jobs.validate_bug(bug.pk) == "valid"
    out = io.StringIO()
    call_command("stabilize", "--target", "0.5", "--repo", "cartcalc", stdout=out, stderr=io.StringIO())
    bug.refresh_from_db()
    assert (bug.clean_runs, bug.buggy_runs) == (5, 5) and f"bug {bug.pk}: stable" in out.getvalue()
    assert "stable 1" in out.getvalue()
    with pytest.raises(CommandError, match="between 0 and 1"):
        call_command("stabilize", "--target", "5")
    Bug.objects.filter(pk=bug.pk).update(status="flaky")
    with pytest.raises(CommandError, match="only valid or approved"):
        call_command("stabilize", str(bug.pk), "--target", "0.1")
