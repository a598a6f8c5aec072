"""The teachers page: staff add endpoints (the key is write-only, never rendered back) and
teachers (provenance, limits), test connections, launch solve batches and watch their progress;
everyone else reads."""
import re

import pytest
from django.urls import reverse

from episodes.models import AuditEvent, Bug, Episode, LLMEndpoint, Repository, SolveBatch, Teacher

from tests.llm.fake_upstream import FakeUpstream, Reply

pytestmark = pytest.mark.django_db

KEY = "sk-live-very-secret-key-0042"


@pytest.fixture
def endpoint(db):
    return LLMEndpoint.objects.create(name="fake", protocol="anthropic", base_url="http://127.0.0.1:9", model="m",
                                      api_key=KEY)


@pytest.fixture
def teacher(endpoint):
    return Teacher.objects.create(name="claude-builtin", endpoint=endpoint, harness="builtin", model="m",
                                  terms_allow_training=None)


@pytest.fixture
def approved(db):
    repo = Repository.objects.create(name="demo", source="/x", pinned_commit="a" * 40, status="ready")
    make = lambda patch, status: Bug.objects.create(  # noqa: E731
        repository=repo, base_commit="a" * 40, patch=patch, verifier="v", status=status)
    return [make("p1", "approved"), make("p2", "approved"), make("p3", "valid")]


def test_the_key_is_never_rendered_back(staff_client, reviewer_client, endpoint, teacher):
    for client in (staff_client, reviewer_client):
        for url in (reverse("teacher_list"), reverse("endpoint_edit", args=[endpoint.pk]),
                    reverse("teacher_detail", args=[teacher.pk])):
            body = client.get(url).content.decode()
            assert KEY not in body and KEY[:12] not in body, url
    page = staff_client.get(reverse("teacher_list")).content.decode()
    assert "Add an endpoint" in page and 'type="password"' in page and ">set<" in page


def test_staff_add_an_endpoint_and_edit_it_keeping_or_replacing_the_key(staff_client):
    response = staff_client.post(reverse("endpoint_add"), {
        "name": "oai", "protocol": "openai_chat", "base_url": "https://api.example.com/v1", "model": "gpt-x",
        "api_key": KEY, "usd_per_mtok_in": "2.5", "usd_per_mtok_out": "10"})
    assert response.status_code == 302
    endpoint = LLMEndpoint.objects.get(name="oai")
    assert endpoint.api_key == KEY
    event = AuditEvent.objects.get(action="add_endpoint")
    assert event.after["key"] == "set" and KEY not in str(event.after)
    edit = {"name": "oai", "protocol": "openai_chat", "base_url": "https://api.example.com/v1", "model": "gpt-y",
            "api_key": "", "usd_per_mtok_in": "2.5", "usd_per_mtok_out": "10"}
    staff_client.post(reverse("endpoint_save", args=[endpoint.pk]), edit)
    endpoint.refresh_from_db()
    assert endpoint.model == "gpt-y" and endpoint.api_key == KEY  # blank keeps the key
    staff_client.post(reverse("endpoint_save", args=[endpoint.pk]), {**edit, "api_key": "sk-new-key-9999"})
    endpoint.refresh_from_db()
    assert endpoint.api_key == "sk-new-key-9999"
    assert AuditEvent.objects.filter(action="change_endpoint").order_by("id").last().after["key"] == "replaced"
    bad = staff_client.post(reverse("endpoint_add"), {"name": "x y", "protocol": "nope", "base_url": "not a url", "model": ""})
    assert bad.status_code == 400 and b"Enter a valid" in bad.content


def test_non_staff_cannot_add_or_launch(reviewer_client, endpoint, teacher, approved):
    assert reviewer_client.post(reverse("endpoint_add"), {"name": "n"}).status_code == 403
    assert reviewer_client.post(reverse("teacher_add"), {"name": "n"}).status_code == 403
    assert reviewer_client.post(reverse("endpoint_test", args=[endpoint.pk])).status_code == 403
    assert reviewer_client.post(reverse("solve_launch"), {"teacher": teacher.pk, "k": 1, "scope": "approved"}).status_code == 403
    page = reviewer_client.get(reverse("teacher_list")).content.decode()
    assert "Launch solving" not in page and "Add a teacher" not in page and "Test connection" not in page
    assert not SolveBatch.objects.exists()


def test_staff_add_a_teacher_with_provenance_and_limits(staff_client, endpoint):
    response = staff_client.post(reverse("teacher_add"), {
        "name": "sonnet", "harness": "builtin", "endpoint": endpoint.pk, "provider": "anthropic", "model": "",
        "terms_allow_training": "true", "max_steps": "12", "max_tokens": "200000", "max_cost_usd": "1.5",
        "max_wall_s": "600"})
    assert response.status_code == 302, response.content.decode()[-2000:]
    t = Teacher.objects.get(name="sonnet")
    assert t.terms_allow_training is True and t.model == "m"  # the endpoint's model by default
    assert t.config == {"max_steps": 12, "max_tokens": 200000, "max_cost_usd": 1.5, "max_wall_s": 600}
    # Codex speaks the Responses API: an Anthropic endpoint is refused with the reason
    bad = staff_client.post(reverse("teacher_add"), {
        "name": "codex", "harness": "codex", "endpoint": endpoint.pk, "terms_allow_training": "unknown",
        "max_steps": "12", "max_tokens": "200000", "max_wall_s": "600"})
    assert bad.status_code == 400 and b"Codex CLI needs an endpoint speaking openai_responses" in bad.content
    page = staff_client.get(reverse("teacher_list")).content.decode()
    assert "sonnet" in page and "Teachers &amp; endpoints" in page


@pytest.mark.parametrize("protocol", ["openai_chat", "anthropic", "openai_responses"])
def test_test_connection_shows_the_result_inline(staff_client, protocol):
    with FakeUpstream() as up:
        up.script("OK", Reply.error(401, "invalid api key"))
        endpoint = LLMEndpoint.objects.create(name=f"e-{protocol}", protocol=protocol, base_url=up.url, model="m", api_key=KEY)
        ok = staff_client.post(reverse("endpoint_test", args=[endpoint.pk]), HTTP_HX_REQUEST="true")
        denied = staff_client.post(reverse("endpoint_test", args=[endpoint.pk]), HTTP_HX_REQUEST="true")
        fallback = staff_client.post(reverse("endpoint_test", args=[endpoint.pk]), follow=True)  # no htmx: a message
    assert b"OK" in ok.content and b"HTTP 200" in ok.content
    assert b"failed" in denied.content and b"invalid api key" in denied.content
    assert b"connection failed" in fallback.content
    sent = up.requests[0]
    assert KEY in (sent.headers.get("authorization", "") + sent.headers.get("x-api-key", ""))
    body = sent.body
    assert body.get("max_tokens", body.get("max_output_tokens")) in (1, 16)
    for response in (ok, denied, fallback):
        assert KEY not in response.content.decode()


@pytest.mark.django_db(transaction=True)  # jobs are enqueued when the transaction commits
def test_launch_form_queues_a_batch_and_progress_polls_until_done(staff_client, teacher, approved, redis_conn):
    response = staff_client.post(reverse("solve_launch"), {"teacher": teacher.pk, "k": "2", "scope": "approved"})
    batch = SolveBatch.objects.get()
    assert response["Location"] == reverse("solve_batch_detail", args=[batch.pk])
    assert (batch.bug_count, batch.attempts_per_bug, batch.created_by.username) == (2, 2, "staffer")
    assert batch.episodes.count() == 4 and set(batch.episodes.values_list("status", flat=True)) == {"queued"}
    import django_rq

    assert django_rq.get_queue("solve").count == 4
    panel = staff_client.get(reverse("solve_batch_progress", args=[batch.pk])).content.decode()
    assert "0/4" in panel and 'hx-trigger="every 2s"' in panel and "queued 4" in panel
    first, second, *_ = batch.episodes.order_by("id")
    # a worker died mid-episode: watching the batch is enough to fail it
    Episode.objects.filter(pk=first.pk).update(status="running", job_id="dead-job")
    panel = staff_client.get(reverse("solve_batch_progress", args=[batch.pk])).content.decode()
    assert "failed 1" in panel and "1/4" in panel
    assert "episode interrupted: its job dead-job no longer exists" in Episode.objects.get(pk=first.pk).error
    Episode.objects.filter(pk=first.pk).update(status="solved", reward=1.0)
    Episode.objects.filter(pk=second.pk).update(status="unsolved", reward=0.0)
    Episode.objects.filter(solve_batch=batch, status="queued").update(status="unsolved", reward=0.0)
    panel = staff_client.get(reverse("solve_batch_progress", args=[batch.pk])).content.decode()
    assert "4/4" in panel and "hx-trigger" not in panel and "solve rate <b>25%</b>" in panel
    detail = staff_client.get(reverse("solve_batch_detail", args=[batch.pk])).content.decode()
    assert len(re.findall(r'href="/episodes/\d+/"', detail)) == 4
    assert AuditEvent.objects.get(action="launch_solving").after["k"] == 2


def test_launch_by_ids_refuses_unapproved_bugs(staff_client, teacher, approved, redis_conn):
    unapproved = approved[2]
    response = staff_client.post(reverse("solve_launch"), {"teacher": teacher.pk, "k": "1", "scope": "ids",
                                                           "ids": f"{approved[0].pk}, {unapproved.pk}"})
    assert response.status_code == 400 and f"not approved or not there: {unapproved.pk}" in response.content.decode()
    response = staff_client.post(reverse("solve_launch"), {"teacher": teacher.pk, "k": "1", "scope": "ids", "ids": "x; drop"})
    assert response.status_code == 400 and not SolveBatch.objects.exists()
    response = staff_client.post(reverse("solve_launch"), {"teacher": teacher.pk, "k": "1", "scope": "ids",
                                                           "ids": str(approved[0].pk)})
    assert response.status_code == 302 and SolveBatch.objects.get().selection["ids"] == [approved[0].pk]


@pytest.mark.django_db(transaction=True)
def test_cancel_a_batch_from_the_page_and_the_command(staff_client, reviewer_client, teacher, approved, redis_conn):
    from django.core.management import call_command

    from episodes.solving import episodes as solving
    batch = solving.launch(teacher, approved[:2], k=1)
    first, second = batch.episodes.order_by("id")
    Episode.objects.filter(pk=first.pk).update(status="running")
    page = staff_client.get(reverse("solve_batch_detail", args=[batch.pk])).content.decode()
    assert "Cancel the 1 queued episode" in page
    assert reviewer_client.post(reverse("solve_batch_cancel", args=[batch.pk])).status_code == 403
    staff_client.post(reverse("solve_batch_cancel", args=[batch.pk]))
    assert dict(batch.episodes.values_list("pk", "status")) == {first.pk: "running", second.pk: "cancelled"}
    assert solving.run_episode(second.pk) == "cancelled"  # its job, when a worker gets to it, does nothing
    assert AuditEvent.objects.get(action="cancel_solving").after == {"cancelled": 1}
    out = __import__("io").StringIO()
    Episode.objects.filter(pk=first.pk).update(status="queued")
    call_command("solve", "--cancel", str(batch.pk), stdout=out)
    assert "1 queued episode(s) cancelled" in out.getvalue()


def test_staff_change_a_teacher_for_example_the_terms_of_an_imported_one(staff_client, reviewer_client, endpoint):
    imported = Teacher.objects.create(name="imported-cc", harness="imported", terms_allow_training=None,
                                      config={"source": "claude_code"})
    page = staff_client.get(reverse("teacher_detail", args=[imported.pk])).content.decode()
    assert "Change this teacher" in page and "terms" in page
    assert "Change this teacher" not in reviewer_client.get(reverse("teacher_detail", args=[imported.pk])).content.decode()
    form = {"name": "imported-cc", "harness": "imported", "endpoint": "", "provider": "anthropic", "model": "claude-x",
            "terms_allow_training": "true", "max_steps": "30", "max_tokens": "500000", "max_wall_s": "1800"}
    assert reviewer_client.post(reverse("teacher_save", args=[imported.pk]), form).status_code == 403
    response = staff_client.post(reverse("teacher_save", args=[imported.pk]), form)
    assert response.status_code == 302, response.content.decode()[-1500:]
    imported.refresh_from_db()
    assert imported.terms_allow_training is True and imported.provider == "anthropic"
    assert imported.config["source"] == "claude_code"  # harness options are kept
    event = AuditEvent.objects.get(action="change_teacher")
    assert event.before["terms_allow_training"] is None and event.after["terms_allow_training"] is True
    # a built-in teacher cannot lose its endpoint
    builtin = Teacher.objects.create(name="b", harness="builtin", endpoint=endpoint, config={"max_cost_usd": 2.0})
    bad = staff_client.post(reverse("teacher_save", args=[builtin.pk]), {**form, "name": "b", "harness": "builtin"})
    assert bad.status_code == 400
    ok = staff_client.post(reverse("teacher_save", args=[builtin.pk]),
                           {**form, "name": "b", "harness": "builtin", "endpoint": endpoint.pk})
    builtin.refresh_from_db()
    assert ok.status_code == 302 and "max_cost_usd" not in builtin.config  # a blank cost limit removes it
