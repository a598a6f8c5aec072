"""The curation pages: filters, sort, capped pagination, next/previous in the filter, bulk
review with confirmation, verifier edits and reruns with progress — staff only, audited."""
import datetime

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from episodes.curation import actions as curation
from episodes.models import AuditEvent, Bug, Episode, Repository, Review, Teacher, VerificationRun

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def repo(db):
    return Repository.objects.create(name="demo", source="/x", pinned_commit="a" * 40, status="ready",
                                     baseline_tests={"t::a": {"status": "passed"}, "t::b": {"status": "passed"}})


def make(repo, n=1, **kw):
    start = Bug.objects.count()
    return [Bug.objects.create(repository=repo, base_commit="a" * 40, verifier="v", **kw,
                               patch=f"--- a/x\n+++ b/x\n-{start + i}\n+{start + i}!\n") for i in range(n)]


def ids(body: str, bugs) -> list[int]:
    return [b.pk for b in bugs if f'data-pk="{b.pk}"' in body]


def test_filters_sort_and_bad_values(repo, staff_client, staff):
    easy, hard = make(repo, 2, status="valid")
    Bug.objects.filter(pk=easy.pk).update(difficulty="<15m", operator="flip_comparison", method="procedural")
    Bug.objects.filter(pk=hard.pk).update(difficulty=">4h", quarantined=True)
    Review.objects.create(bug=easy, reviewer=staff, verdict="approve")
    flaky, = make(repo, status="flaky", problem_statement="Discounts vanish on Tuesdays.")
    get = lambda **q: staff_client.get(reverse("bug_list"), q).content.decode()  # noqa: E731
    everyone = [easy, hard, flaky]
    assert ids(get(difficulty="<15m"), everyone) == [easy.pk]
    assert ids(get(difficulty="none"), everyone) == [flaky.pk]
    assert ids(get(verdict="approve"), everyone) == [easy.pk]
    assert ids(get(verdict="unreviewed"), everyone) == [hard.pk, flaky.pk]
    assert ids(get(flaky="quarantined"), everyone) == [hard.pk]
    assert ids(get(flaky="flaky"), everyone) == [flaky.pk]
    assert ids(get(operator="flip_comparison"), everyone) == [easy.pk]
    assert ids(get(q="tuesdays"), everyone) == [flaky.pk]
    assert ids(get(q=hard.patch.splitlines()[-1]), everyone) == [hard.pk]  # the patch is searched too
    tomorrow = (timezone.localdate() + datetime.timedelta(days=1)).isoformat()
    assert ids(get(since=tomorrow), everyone) == []
    assert ids(get(until=tomorrow), everyone) == [easy.pk, hard.pk, flaky.pk]
    # sort: oldest first reverses the default order
    body = get(sort="id")
    assert body.index(f'data-pk="{easy.pk}"') < body.index(f'data-pk="{flaky.pk}"')
    body = get()
    assert body.index(f'data-pk="{flaky.pk}"') < body.index(f'data-pk="{easy.pk}"')
    # review tallies are shown per row
    assert "✓1" in body
    # a bad value is reported, not silently widened into "everything"
    body = get(status="nonsense", difficulty="<15m")
    assert "Ignored: status" in body and ids(body, everyone) == [easy.pk]


def test_pagination_is_capped_and_clamped(repo, staff_client, monkeypatch):
    make(repo, 7, status="valid")
    monkeypatch.setattr(curation, "COUNT_CAP", 5)
    monkeypatch.setattr(curation, "PER_PAGE", 2)
    page = curation.paginate(curation.filtered_bugs({}), 1, per_page=2, cap=5)
    assert page.capped and page.count == 5 and page.num_pages is None and page.has_next
    page = curation.paginate(curation.filtered_bugs({}), 1, per_page=2, cap=100)
    assert not page.capped and page.count == 7 and page.num_pages == 4
    last = curation.paginate(curation.filtered_bugs({}), 99, per_page=2, cap=100)
    assert last.number == 4 and len(last.rows) == 1 and not last.has_next
    body = staff_client.get(reverse("bug_list")).content.decode()
    assert "1–7 of 7 bugs" in body  # the view's defaults (50 per page, 10k cap)


def test_list_query_count_is_flat_with_reviews_and_filters(repo, staff_client, staff, django_assert_max_num_queries):
    for bug in make(repo, 60, status="valid"):
        Review.objects.create(bug=bug, reviewer=staff, verdict="approve", difficulty="<15m")
    with django_assert_max_num_queries(8):
        body = staff_client.get(reverse("bug_list"), {"verdict": "approve", "sort": "-bound", "q": "patch"}).content
    assert body.count(b"data-pk=") == 0  # "patch" is not in these patches: the search narrows
    with django_assert_max_num_queries(8):
        body = staff_client.get(reverse("bug_list"), {"verdict": "approve", "sort": "-bound"}).content
    assert body.count(b"data-pk=") == 50


@pytest.mark.parametrize("sort", ["-created", "id", "-bound", "repository"])
def test_detail_walks_the_filter_in_list_order(repo, staff_client, sort):
    bugs = make(repo, 4, status="valid")
    make(repo, 2, status="invalid")
    Bug.objects.filter(pk=bugs[1].pk).update(flake_upper_bound=0.3)
    listed = list(curation.filtered_bugs({"status": "valid", "sort": sort}).values_list("id", flat=True))
    assert sorted(listed) == sorted(b.pk for b in bugs)
    for i, pk in enumerate(listed):
        prev_id, next_id = curation.neighbours(Bug.objects.get(pk=pk), {"status": "valid", "sort": sort})
        assert prev_id == (listed[i - 1] if i else None) and next_id == (listed[i + 1] if i + 1 < len(listed) else None)
    body = staff_client.get(reverse("bug_detail", args=[listed[1]]), {"status": "valid", "sort": sort}).content.decode()
    assert f'data-next="/bugs/{listed[2]}/?status=valid&amp;sort={sort}"' in body
    assert f'data-previous="/bugs/{listed[0]}/?status=valid&amp;sort={sort}"' in body


def test_review_moves_on_to_the_next_bug_of_the_filter(repo, staff_client):
    first, second = sorted(make(repo, 2, status="valid"), key=lambda b: -b.pk)  # newest first
    body = staff_client.get(reverse("bug_detail", args=[first.pk]), {"status": "valid"}).content.decode()
    assert f'name="next" value="/bugs/{second.pk}/?status=valid"' in body
    response = staff_client.post(reverse("bug_review", args=[first.pk]), {
        "underspecified": "0", "rejects_valid_fixes": "0", "verdict": "approve", "next": f"/bugs/{second.pk}/?status=valid",
    })
    assert response["Location"] == f"/bugs/{second.pk}/?status=valid"
    first.refresh_from_db()
    assert first.status == "approved"


def test_detail_shows_tests_runs_episodes_and_aggregate(repo, staff_client, staff, django_user_model):
    bug, = make(repo, status="valid", problem_statement="Totals drift.")
    Bug.objects.filter(pk=bug.pk).update(fail_to_pass=["t::a"], pass_to_pass=["t::b"], validation_started_at=timezone.now())
    VerificationRun.objects.create(bug=bug, repository=repo, code="buggy", scope="suite", outcome="failed",
                                   tests={"t::a": "failed", "t::b": "passed"}, log_excerpt="E assert 3 == 4")
    VerificationRun.objects.create(bug=bug, repository=repo, code="clean", outcome="passed", seed=7, log_excerpt="ok clean")
    teacher = Teacher.objects.create(name="t1")
    Episode.objects.create(bug=bug, teacher=teacher, status="solved", reward=1.0)
    other = django_user_model.objects.create_user("r2", is_staff=True)
    bug.refresh_from_db()
    bug.review(staff, underspecified=0, rejects_valid_fixes=0, other_major_issue=False, difficulty="", notes="", verdict="approve")
    bug.review(other, underspecified=2, rejects_valid_fixes=1, other_major_issue=False, difficulty="", notes="", verdict="approve")
    body = staff_client.get(reverse("bug_detail", args=[bug.pk])).content.decode()
    assert "Totals drift." in body and 'class="add"' in body
    assert '<td><code>t::a</code></td><td>F2P</td><td class="status-passed">passed</td><td class="status-failed">failed</td>' in body
    assert "E assert 3 == 4" in body and "ok clean" in body
    assert "t1" in body and 'id="bug-episodes"' in body
    assert "2 reviewers: 2 approve, 0 reject" in body and "worst underspecified 2" in body
    assert 'status-rejected">rejected</span>' in body


def test_bulk_review_confirms_then_reviews_each_bug(repo, staff_client, staff, reviewer_client, monkeypatch):
    valid = make(repo, 3, status="valid")
    make(repo, 1, status="invalid")
    confirm = staff_client.get(reverse("bug_bulk"), {"status": "", "action": "approve"}).content.decode()
    assert "<b>approve</b> <b>3</b> bugs" in confirm  # the invalid bug is not offered
    # the reviewer may look but is not offered the button, and cannot post
    assert "Only staff" in reviewer_client.get(reverse("bug_bulk"), {"action": "approve"}).content.decode()
    wanted = ",".join(str(b.pk) for b in valid)
    assert reviewer_client.post(reverse("bug_bulk_apply"), {"verdict": "approve", "ids": wanted}).status_code == 403
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(staff)
    assert csrf_client.post(reverse("bug_bulk_apply"), {"verdict": "approve", "ids": wanted}).status_code == 403
    assert not Review.objects.exists()
    # one bug changes between confirmation and apply: it is left alone
    Bug.objects.filter(pk=valid[0].pk).update(status="flaky")
    response = staff_client.post(reverse("bug_bulk_apply") + "?repository=demo",
                                 {"verdict": "approve", "ids": wanted, "notes": "batch ok"}, follow=True)
    assert b"Approved 2 bug(s); 1 changed since you confirmed" in response.content
    assert set(Bug.objects.filter(status="approved").values_list("id", flat=True)) == {valid[1].pk, valid[2].pk}
    events = AuditEvent.objects.filter(action="review")
    assert events.count() == 2 and all(e.before["status"] == "valid" and e.after["status"] == "approved" for e in events)
    summary = AuditEvent.objects.get(action="bulk_review")
    assert sorted(summary.after["bugs"]) == sorted([valid[1].pk, valid[2].pk]) and summary.actor == staff
    assert Review.objects.filter(notes="batch ok").count() == 2


def test_bulk_review_is_capped(repo, staff_client, monkeypatch):
    bugs = make(repo, 4, status="valid")
    monkeypatch.setattr(curation, "BULK_CAP", 2)
    confirm = staff_client.get(reverse("bug_bulk"), {"action": "reject"}).content.decode()
    assert "<b>reject</b> <b>2</b> bugs" in confirm and "run it again for the next 2" in confirm
    ids = ",".join(str(b.pk) for b in bugs)
    unexplained = staff_client.post(reverse("bug_bulk_apply"), {"verdict": "reject", "ids": ids}, follow=True)
    assert b"a reject needs a reason" in unexplained.content and not Bug.objects.filter(status="rejected").exists()
    response = staff_client.post(reverse("bug_bulk_apply"), {"verdict": "reject", "ids": ids, "notes": "verifier too narrow"},
                                 follow=True)
    assert b"Rejected 2 bug(s)." in response.content and Bug.objects.filter(status="rejected").count() == 2


def test_edit_verifier_revalidates_with_audit(repo, staff_client, reviewer_client, redis_conn,
                                              django_capture_on_commit_callbacks):
    bug, = make(repo, status="flaky")
    url = reverse("bug_edit_verifier", args=[bug.pk])
    assert reviewer_client.post(url, {"verifier": "x"}).status_code == 403
    response = staff_client.post(url, {"verifier": "v", "next": reverse("flaky_detail", args=[bug.pk])}, follow=True)
    assert b"unchanged" in response.content
    with django_capture_on_commit_callbacks(execute=True):  # django-rq enqueues on commit
        response = staff_client.post(url, {"verifier": "import sys\r\nsys.exit(0)\r\n",
                                           "next": reverse("flaky_detail", args=[bug.pk])})
    assert response["Location"] == reverse("flaky_detail", args=[bug.pk])
    bug.refresh_from_db()
    assert bug.verifier == "import sys\nsys.exit(0)\n" and bug.status == "validating" and bug.validation_job_id
    event = AuditEvent.objects.get(action="edit_verifier")
    assert event.before == {"verifier": "v", "status": "flaky"}
    assert event.after["verifier"] == bug.verifier and event.after["status"] == "validating"
    import django_rq
    assert bug.validation_job_id in django_rq.get_queue("verify").job_ids
    # while it validates, another edit is refused
    response = staff_client.post(url, {"verifier": "print(2)"}, follow=True)
    assert b"being validated" in response.content
    body = staff_client.get(reverse("flaky_detail", args=[bug.pk])).content.decode()
    assert "verifier before / after" in body and "sys.exit(0)" in body


def test_rerun_progress_and_triage_page(repo, staff_client, reviewer_client, redis_conn,
                                        django_capture_on_commit_callbacks):
    bug, = make(repo, status="flaky")
    Bug.objects.filter(pk=bug.pk).update(clean_runs=2, clean_passes=1, buggy_runs=1, buggy_fails=1, flip_rate=1.0,
                                         flake_upper_bound=0.9)
    for code, outcome, log in [("clean", "passed", "1 passed"), ("clean", "failed", "AssertionError: timing"),
                               ("buggy", "failed", "1 failed")]:
        VerificationRun.objects.create(bug=bug, repository=repo, code=code, outcome=outcome, log_excerpt=log, seed=3)
    body = staff_client.get(reverse("flaky_detail", args=[bug.pk])).content.decode()
    assert 'data-side="clean"' in body and 'data-side="buggy"' not in body  # only clean disagreed
    assert body.index("1 passed") < body.index("AssertionError: timing")  # expected next to unexpected
    assert '<dd id="run-count">3</dd>' in body and "hx-get" not in body.split('id="flaky-live"')[1].split(">")[0]
    url = reverse("bug_rerun", args=[bug.pk])
    assert reviewer_client.post(url, {"n": "2"}).status_code == 403
    assert staff_client.post(url, {"n": "500"}, follow=True).content.count(b"between 1 and 100") == 1
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(url, {"n": "2", "next": reverse("flaky_detail", args=[bug.pk])})
    event = AuditEvent.objects.get(action="enqueue_reruns")
    assert event.before == {"runs": 3} and event.after["n"] == 2 and event.after["expect_runs"] == 7
    live = staff_client.get(reverse("flaky_live", args=[bug.pk])).content.decode()
    assert "0/4 runs · job queued" in live and 'hx-trigger="every 2s"' in live
    VerificationRun.objects.create(bug=bug, repository=repo, code="buggy", outcome="failed", purpose="rerun")
    live = staff_client.get(reverse("flaky_live", args=[bug.pk])).content.decode()
    assert "1/4 runs" in live and '<dd id="run-count">4</dd>' in live


def test_flaky_queue_rows_worst_first(repo, staff_client):
    mild, bad = make(repo, 2, status="flaky")
    Bug.objects.filter(pk=mild.pk).update(flip_rate=0.1, quarantined=True)
    Bug.objects.filter(pk=bad.pk).update(flip_rate=0.8)
    make(repo, 1, status="valid")
    rows = staff_client.get(reverse("flaky_rows")).content.decode()
    assert rows.index(f'data-pk="{bad.pk}"') < rows.index(f'data-pk="{mild.pk}"') and rows.count("data-pk=") == 2
    assert "2 flaky verifiers" in rows and "1 of them quarantined" in rows and "<html" not in rows
    page = staff_client.get(reverse("flaky_list")).content.decode()
    assert 'hx-get="/flaky/rows/?page=1"' in page and 'hx-trigger="every 5s"' in page


def test_detail_pages_query_count_does_not_grow_with_runs(repo, staff_client, django_assert_max_num_queries):
    bug, = make(repo, status="flaky")
    teacher = Teacher.objects.create(name="t1")
    for i in range(40):
        VerificationRun.objects.create(bug=bug, repository=repo, code=["clean", "buggy"][i % 2], outcome="passed",
                                       scope="verifier" if i < 30 else "suite")
    for _ in range(5):
        Episode.objects.create(bug=bug, teacher=teacher, status="unsolved")
    # 14: the page also lists the LLM endpoints for the staff-only "Rewrite statement" form (one query, not per run)
    with django_assert_max_num_queries(14):
        body = staff_client.get(reverse("bug_detail", args=[bug.pk]), {"status": "flaky"}).content.decode()
    assert body.count('class="cell') == 30 and body.count("<td>t1</td>") == 5
    with django_assert_max_num_queries(10):
        assert staff_client.get(reverse("flaky_detail", args=[bug.pk])).status_code == 200


def test_column_headers_sort_and_flip(repo, staff_client):
    make(repo, 2, status="valid")
    body = staff_client.get(reverse("bug_list"), {"status": "valid"}).content.decode()
    assert 'href="?status=valid&amp;sort=-id" class="sort">#</a>' in body
    assert 'href="?status=valid&amp;sort=created" class="sort">created</a> ↓' in body  # the default, flips to oldest first
    body = staff_client.get(reverse("bug_list"), {"status": "valid", "sort": "-id"}).content.decode()
    assert 'href="?status=valid&amp;sort=id" class="sort">#</a> ↓' in body
