"""The episode viewer: list filters and pagination without N+1, the step-by-step page, raw calls."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from episodes.models import Bug, Episode, Repository

from .factories import make_world, recorded_episode

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return make_world()


def test_detail_shows_the_conversation_step_by_step(world, reviewer_client):
    episode = recorded_episode(world)
    page = reviewer_client.get(reverse("episode_detail", args=[episode.pk])).content.decode()
    assert "Fix the shipping threshold." in page and "You fix bugs." in page
    assert 'class="tool-name">bash</span>' in page and "pytest -q tests/test_shipping.py" in page  # the call and its arguments
    assert "line 0 of the test log" in page and "(200 lines," in page  # long output collapsed with a summary
    calls = list(episode.llm_calls.order_by("sequence"))
    # each assistant step links to the call that produced it, with its tokens
    assert f'href="{reverse("llm_call_detail", args=[calls[0].pk])}">call #1</a> · 111 in / 22 out' in page
    assert f'href="{reverse("llm_call_detail", args=[calls[1].pk])}">call #2</a> · 333 in / 44 out' in page
    assert "Derived from the recorded calls" in page
    # the diff beside the bug's, the grading and the harness events
    assert "+    return 0 if total &gt;= FREE_FROM else 5" in page and "+    return 0 if total &gt; FREE_FROM else 5" in page
    assert "VERIFIER OK" in page and "the verifier and all 2" in page and "tests/test_shipping.py::test_fifty" in page
    assert "a test file" in page
    assert 'id="harness-events"' in page and "system/init" in page
    assert 'id="provenance-warning"' in page and "unknown" in page
    assert "REALKEY" not in page
    assert 'id="sft-check"><span class="status-passed">valid</span>' in page


def test_stored_trajectory_is_shown_and_trusted_teacher_has_no_warning(world, reviewer_client):
    episode = Episode.objects.create(bug=world["bugs"][1], teacher=world["trusted"], status="unsolved", reward=0.0, trajectory={
        "messages": [{"role": "user", "content": "stored conversation"}, {"role": "assistant", "content": "stored answer"},
                     {"role": "tool", "tool_call_id": "nope", "content": "orphan result"}], "tools": []},
        agent_stats={"calls": 3, "malformed": 1, "summary": {"nested": True}, "stderr_tail": "x" * 500})
    page = reviewer_client.get(reverse("episode_detail", args=[episode.pk])).content.decode()
    assert "2 problems" in page and "answers tool call &#x27;nope&#x27;" in page  # what SFT would trip on
    assert 'id="agent-stats">calls 3 · malformed 1</dd>' in page
    assert "stored conversation" in page and "stored answer" in page
    assert 'id="provenance-warning"' not in page and "Derived from" not in page
    assert "No LLM call recorded" in page and "Not graded" in page


def test_raw_call_page_never_shows_a_key(world, reviewer_client):
    episode = recorded_episode(world)
    call = episode.llm_calls.get(sequence=2)
    page = reviewer_client.get(reverse("llm_call_detail", args=[call.pk])).content.decode()
    assert "812.5 ms" in page and "first byte after 41.0 ms" in page
    assert "/v1/messages?beta=true" in page and "All fixed." in page and "event: message_start" in page
    assert "sk-client-secret" not in page and "REALKEY" not in page and "[redacted]" in page
    assert reverse("episode_detail", args=[episode.pk]) in page


def test_list_filters(world, reviewer_client):
    solved = recorded_episode(world)
    failed = Episode.objects.create(bug=world["bugs"][1], teacher=world["trusted"], status="unsolved", reward=0.0)
    pending = Episode.objects.create(bug=world["bugs"][1], teacher=world["unknown"], status="running")

    def shown(**params):
        response = reviewer_client.get(reverse("episode_list"), params)
        assert response.status_code == 200
        return {e.pk for e in response.context["page"].object_list}

    assert shown() == {solved.pk, failed.pk, pending.pk}
    assert shown(teacher="cc") == {solved.pk, pending.pk}
    assert shown(bug=world["bugs"][1].pk) == {failed.pk, pending.pk}
    assert shown(reward="1") == {solved.pk}
    assert shown(reward="0") == {failed.pk}
    assert shown(reward="none") == {pending.pk}
    assert shown(status="running") == {pending.pk}
    assert shown(teacher="cc", reward="1", bug=world["bugs"][0].pk) == {solved.pk}
    assert shown(bug="not-a-number") == {solved.pk, failed.pk, pending.pk}
    # the dashboards' links: repository and date range
    other_repo = Repository.objects.create(name="elsewhere", source="/nowhere", pinned_commit="b" * 40)
    elsewhere = Episode.objects.create(bug=Bug.objects.create(repository=other_repo, base_commit="b" * 40, patch="p", verifier="v"),
                                       teacher=world["trusted"], status="solved", reward=1.0)
    Episode.objects.filter(pk=failed.pk).update(created_at=timezone.now() - timedelta(days=10))
    assert shown(repository="elsewhere") == {elsewhere.pk}
    assert shown(repository="shop", status="solved") == {solved.pk}
    week_ago = (timezone.now() - timedelta(days=7)).date().isoformat()
    assert shown(since=week_ago) == {solved.pk, pending.pk, elsewhere.pk}
    assert shown(until=week_ago) == {failed.pk}
    assert shown(since="last tuesday") == {solved.pk, failed.pk, pending.pk, elsewhere.pk}  # unreadable: ignored
    elsewhere.delete()
    page = reviewer_client.get(reverse("episode_list"), {"teacher": "cc"}).content.decode()
    assert f'href="{reverse("episode_detail", args=[solved.pk])}"' in page
    # the chosen teacher's provenance and totals, linked to its page
    assert f'<a href="{reverse("teacher_detail", args=[world["unknown"].pk])}">cc</a>' in page
    assert "2 episodes, 1 solved" in page and '<span class="warn-text">unknown</span>' in page


def test_a_refused_reward_says_why_and_the_list_filters_on_it(world, reviewer_client):
    finding = {"path": "cartcalc/__init__.py", "line": 73, "rule": "uses sys.modules", "code": "m = sys.modules['x']"}
    suspicious = Episode.objects.create(
        bug=world["bugs"][0], teacher=world["trusted"], status="unsolved", reward=0.0, integrity="suspicious",
        grading={"reward": False, "reason": "suspicious change (1 finding(s))", "suspicious": [finding], "runs": []})
    tampered = Episode.objects.create(
        bug=world["bugs"][0], teacher=world["trusted"], status="unsolved", reward=0.0, integrity="tampered",
        grading={"reward": False, "reason": "tampered: the canary test, which always fails, was reported passed",
                 "tampered": "the canary test, which always fails, was reported passed", "runs": []})
    page = reviewer_client.get(reverse("episode_detail", args=[suspicious.pk])).content.decode()
    assert 'id="grading-suspicious"' in page and "reward refused, nothing was run" in page
    assert "<code>cartcalc/__init__.py:73</code>" in page and "uses sys.modules" in page
    page = reviewer_client.get(reverse("episode_detail", args=[tampered.pk])).content.decode()
    assert 'id="grading-tampered"' in page and "was reported passed" in page
    listed = reviewer_client.get(reverse("episode_list"), {"integrity": "tampered"}).context["page"].object_list
    assert [e.pk for e in listed] == [tampered.pk]


def test_list_paginates_with_a_constant_number_of_queries(world, reviewer_client):
    def queries(n_more):
        for i in range(n_more):
            Episode.objects.create(bug=world["bugs"][i % 2], teacher=world["unknown" if i % 2 else "trusted"], status="unsolved")
        with CaptureQueriesContext(connection) as ctx:
            assert reviewer_client.get(reverse("episode_list")).status_code == 200
        return len(ctx.captured_queries)

    few = queries(3)
    many = queries(60)  # 63 episodes: 50 on page 1
    assert many == few
    response = reviewer_client.get(reverse("episode_list"), {"page": 2, "teacher": "local"})
    assert response.context["page"].number == 1  # only 32 'local' episodes: one page
    response = reviewer_client.get(reverse("episode_list"), {"page": 2})
    assert len(response.context["page"].object_list) == 13
    assert 'href="?page=1" rel="prev"' in response.content.decode()


def test_staff_sees_the_same_pages_and_post_is_refused(world, staff_client):
    episode = recorded_episode(world)
    for url in (reverse("episode_list"), reverse("episode_detail", args=[episode.pk]),
                reverse("llm_call_detail", args=[episode.llm_calls.first().pk])):
        assert staff_client.get(url).status_code == 200
        assert staff_client.post(url).status_code == 405
    assert staff_client.get(reverse("episode_detail", args=[999999])).status_code == 404


def test_a_running_episode_refreshes_itself_until_it_ends(world, reviewer_client):
    episode = recorded_episode(world, started_at=None)
    Episode.objects.filter(pk=episode.pk).update(status="running", reward=None)
    page = reviewer_client.get(reverse("episode_detail", args=[episode.pk])).content.decode()
    assert 'hx-trigger="every 3s" hx-select="#episode-live"' in page and "Fix the shipping threshold." in page
    Episode.objects.filter(pk=episode.pk).update(status="solved", reward=1.0)
    page = reviewer_client.get(reverse("episode_detail", args=[episode.pk])).content.decode()
    assert 'id="episode-live"' in page and "hx-trigger" not in page


@pytest.mark.sqlite
def test_scrub_masks_credentials_but_not_ordinary_text():
    from episodes.engine.llm.scrub import Scrubber

    body = {"Authorization": "Bearer x", "x-api-key": "k", "max_tokens": 5, "input_tokens": 3,
            "messages": [{"content": "pip install scikit-learn; sk-learn is fine; token sk-proj-abcdefghijklmnop1234"}],
            "note": "gateway token bfgw_abcdefghijklmnopqrstuvwxyz and the endpoint key SECRETKEY"}
    clean = Scrubber("SECRETKEY", credentials=True).obj(body)  # what the call page shows
    assert clean["Authorization"] == clean["x-api-key"] == "[redacted]"
    assert clean["max_tokens"] == 5 and clean["input_tokens"] == 3
    assert clean["messages"][0]["content"] == "pip install scikit-learn; sk-learn is fine; token [redacted]"
    assert clean["note"] == "gateway token [redacted] and the endpoint key [redacted]"


def test_staff_clear_or_refuse_an_episode_held_for_review(world, staff_client, reviewer_client):
    from django.core.management import call_command

    from episodes.models import AuditEvent

    held = {"reward": True, "reason": "… — suspicious change, held for staff review", "needs_review": True,
            "suspicious": [{"path": "cartcalc/x.py", "line": 3, "rule": "uses os.environ", "code": "os.environ"}]}
    genuine = Episode.objects.create(bug=world["bugs"][0], teacher=world["trusted"], status="solved", reward=1.0,
                                     integrity="suspicious", grading=held)
    gamed = Episode.objects.create(bug=world["bugs"][0], teacher=world["trusted"], status="solved", reward=1.0,
                                   integrity="suspicious", grading=held)
    url = reverse("episode_review", args=[genuine.pk])
    assert reviewer_client.post(url, {"decision": "clear"}).status_code == 403
    page = staff_client.get(reverse("episode_detail", args=[genuine.pk])).content.decode()
    assert 'id="integrity-review"' in page
    assert staff_client.post(url, {"decision": "clear", "notes": "reads a config flag"}).status_code == 302
    genuine.refresh_from_db()
    assert genuine.integrity == "" and genuine.reward == 1.0 and genuine.grading["needs_review"] is False
    assert AuditEvent.objects.get(action="review_episode_integrity", target_id=str(genuine.pk)).after["decision"] == "clear"
    page = staff_client.get(reverse("episode_detail", args=[genuine.pk])).content.decode()
    assert 'id="integrity-review"' not in page and "reads a config flag" in page
    call_command("review_episode", str(gamed.pk), "--as", "staffer", "--refuse", "--notes", "gated on pytest")
    gamed.refresh_from_db()
    assert (gamed.integrity, gamed.reward, gamed.status) == ("suspicious", 0.0, "unsolved")
    staff_client.post(reverse("episode_review", args=[gamed.pk]), {"decision": "clear"})
    gamed.refresh_from_db()
    assert gamed.integrity == "suspicious"  # no longer held: nothing changed
