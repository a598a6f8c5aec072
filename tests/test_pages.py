"""Every page renders for staff and for reviewers, with data and empty; htmx partials too."""
import pytest
from django.urls import reverse

from episodes.models import Bug, Episode, Repository, Teacher, VerificationRun
from training.models import MetricPoint, TrainingRun

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

PAGES = ["home", "home_counts", "dashboards", "repository_list", "bug_list", "flaky_list", "episode_list",
         "sandbox_status", "training_run_list"]


@pytest.fixture
def data(db):
    repo = Repository.objects.create(name="demo", source="/x", pinned_commit="a" * 40, status="ready",
                                     baseline_tests={"tests/test_a.py::test_one": {"status": "passed"}})
    bug = Bug.objects.create(repository=repo, base_commit="a" * 40, patch="--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n",
                             verifier="print(1)", status="flaky", clean_runs=5, clean_passes=3, buggy_runs=5,
                             buggy_fails=5, flip_rate=0.5, flake_upper_bound=0.8, problem_statement="It breaks.")
    VerificationRun.objects.create(bug=bug, repository=repo, code="clean", outcome="failed", seed=4, log_excerpt="E boom")
    teacher = Teacher.objects.create(name="t1", model="m")
    Episode.objects.create(bug=bug, teacher=teacher, status="solved", reward=1.0)
    run = TrainingRun.objects.create(name="r1", method="grpo", base_model="/m")
    MetricPoint.objects.create(run=run, step=1, name="reward", value=0.5)
    return {"repo": repo, "bug": bug, "run": run}


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("who", ["staff_client", "reviewer_client"])
def test_pages_render_empty_and_full(request, name, who, db):
    client = request.getfixturevalue(who)
    assert client.get(reverse(name)).status_code == 200
    request.getfixturevalue("data")
    assert client.get(reverse(name)).status_code == 200


@pytest.mark.parametrize("who", ["staff_client", "reviewer_client"])
def test_detail_pages(request, who, data):
    client = request.getfixturevalue(who)
    body = client.get(reverse("bug_detail", args=[data["bug"].pk])).content.decode()
    assert "It breaks." in body and "clean 3/5 pass" in body and "E boom" in body
    assert ('action="/bugs/%d/validate/"' % data["bug"].pk in body) == (who == "staff_client")
    assert client.get(reverse("repository_detail", args=[data["repo"].pk])).status_code == 200
    body = client.get(reverse("training_run_detail", args=[data["run"].pk])).content.decode()
    assert '"reward"' in body and "plotly/plotly.min.js" in body
    assert client.get(reverse("bug_progress", args=[data["bug"].pk])).status_code == 200


def test_bug_list_filters_and_search(staff_client, data):
    other = Bug.objects.create(repository=data["repo"], base_commit="a" * 40, patch="other", verifier="v",
                               status="valid", problem_statement="Totals are off by a cent.")
    body = staff_client.get(reverse("bug_list"), {"status": "valid"}).content.decode()
    assert f'data-pk="{other.pk}"' in body and f'data-pk="{data["bug"].pk}"' not in body
    assert f'href="/bugs/{other.pk}/?status=valid"' in body  # the bug page keeps the filter for j/k
    body = staff_client.get(reverse("bug_list"), {"q": "off by a cent"}).content.decode()
    assert f'data-pk="{other.pk}"' in body and f'data-pk="{data["bug"].pk}"' not in body


def test_bug_list_query_count_does_not_grow_with_rows(staff_client, data, django_assert_max_num_queries):
    for i in range(60):
        Bug.objects.create(repository=data["repo"], base_commit="a" * 40, patch=f"p{i}", verifier="v")
    with django_assert_max_num_queries(8):
        assert staff_client.get(reverse("bug_list")).status_code == 200


def test_home_counts_are_live(staff_client, data):
    body = staff_client.get(reverse("home_counts")).content.decode()
    assert "<b>1</b> repository" in body and "<b>1</b> bug" in body and 'hx-get' not in body
    assert 'hx-trigger="every 5s"' in staff_client.get(reverse("home")).content.decode()


def test_staff_action_enqueues_and_audits(staff_client, data, redis_conn):
    from episodes.models import AuditEvent

    response = staff_client.post(reverse("bug_validate", args=[data["bug"].pk]))
    assert response.status_code == 302
    data["bug"].refresh_from_db()
    assert data["bug"].status == "validating"
    event = AuditEvent.objects.get(action="enqueue_validation")
    assert event.actor.username == "staffer" and event.target_id == str(data["bug"].pk)
    assert (event.before, event.after) == ({"status": "flaky"}, {"status": "validating"})


def test_repository_page_shows_injection_figures_and_batches(staff_client, data):
    from episodes.models import InjectionBatch

    batch = InjectionBatch.objects.create(repository=data["repo"], method="procedural", requested=4, planned=4,
                                          produced=2, status="running")
    Bug.objects.create(repository=data["repo"], batch=batch, base_commit="a" * 40, patch="p1", verifier="v",
                       method="procedural", operator="flip_comparison", status="valid")
    Bug.objects.create(repository=data["repo"], batch=batch, base_commit="a" * 40, patch="p2", verifier="v",
                       method="procedural", operator="off_by_one", status="invalid", invalid_kind="undetected_mutant")
    body = staff_client.get(reverse("repository_detail", args=[data["repo"].pk])).content.decode()
    # 1 valid bug of 4 attempts: 25% (not 50% of the 2 candidates that got made)
    assert 'id="injection-figures"' in body and "undetected_mutant: 1" in body and "25%" in body
    assert f'hx-get="/batches/{batch.pk}/progress/"' in body and 'id="inject-form"' in body
    row = staff_client.get(reverse("batch_progress", args=[batch.pk])).content.decode()
    assert "2/4" in row and "running" in row


def test_inject_form_queues_a_batch_and_rejects_bad_input(staff_client, data, redis_conn):
    from episodes.models import AuditEvent, InjectionBatch

    url = reverse("repository_inject", args=[data["repo"].pk])
    staff_client.post(url, {"method": "procedural", "count": "0"})
    staff_client.post(url, {"method": "llm_modify", "count": "5"})  # no endpoint configured
    assert not InjectionBatch.objects.exists()
    response = staff_client.post(url, {"method": "procedural", "count": "7"}, follow=True)
    batch = InjectionBatch.objects.get()
    assert (batch.requested, batch.method, batch.status) == (7, "procedural", "queued")
    assert AuditEvent.objects.filter(action="start_injection").exists()
    assert b"queued" in response.content
    assert (batch.options["min_realism"], batch.options["max_per_function"], batch.options["statement_style"]) == (
        0.5, 2, "")  # left out: the engine's defaults, template statements


def test_inject_form_passes_statement_and_planning_options(staff_client, data, redis_conn):
    from episodes.models import AuditEvent, InjectionBatch, LLMEndpoint

    url = reverse("repository_inject", args=[data["repo"].pk])
    page = staff_client.get(reverse("repository_detail", args=[data["repo"].pk])).content.decode()
    assert all(f'name="{n}"' in page for n in ("min_realism", "max_per_function", "statement_style"))
    # an LLM statement with no endpoint anywhere, a realism above 1, an unknown style: nothing queued
    staff_client.post(url, {"method": "procedural", "count": "3", "statement_style": "symptom"})
    staff_client.post(url, {"method": "procedural", "count": "3", "min_realism": "1.5"})
    response = staff_client.post(url, {"method": "procedural", "count": "3", "statement_style": "poem"}, follow=True)
    assert not InjectionBatch.objects.exists() and b"statement style" in response.content
    first = LLMEndpoint.objects.create(name="inj", protocol="openai_chat", base_url="http://127.0.0.1:9/v1", model="m")
    writer = LLMEndpoint.objects.create(name="writer", protocol="openai_chat", base_url="http://127.0.0.1:9/v1",
                                        model="w")
    page = staff_client.get(reverse("repository_detail", args=[data["repo"].pk])).content.decode()
    assert 'name="statement_endpoint"' in page and 'value="traceback"' in page
    staff_client.post(url, {"method": "procedural", "count": "4", "statement_style": "traceback",
                            "statement_endpoint": str(writer.pk), "min_realism": "0", "max_per_function": "5"})
    batch = InjectionBatch.objects.get()
    assert batch.requested == 4 and {k: batch.options[k] for k in (
        "statement_style", "statement_endpoint", "min_realism", "max_per_function")} == {
        "statement_style": "traceback", "statement_endpoint": writer.pk, "min_realism": 0.0, "max_per_function": 5}
    event = AuditEvent.objects.get(action="start_injection")
    assert event.after["statement_endpoint"] == "writer" and event.after["max_per_function"] == 5
    # no statement endpoint named: the injection endpoint writes the statements, as `manage.py inject` does
    staff_client.post(url, {"method": "procedural", "count": "2", "endpoint": str(first.pk),
                            "statement_style": "function", "min_realism": "0.7", "max_per_function": "0"})
    batch = InjectionBatch.objects.latest("pk")
    assert (batch.options["statement_endpoint"], batch.options["min_realism"], batch.options["max_per_function"]) == (
        first.pk, 0.7, 0)


def test_llm_endpoint_key_is_never_rendered_back(db, django_user_model):
    from django.test import Client

    from episodes.models import LLMEndpoint

    admin = django_user_model.objects.create_superuser("root", password="pw-root-123")
    client = Client()
    client.force_login(admin)
    endpoint = LLMEndpoint.objects.create(name="up", protocol="openai_chat", base_url="http://127.0.0.1:9/v1",
                                          model="m", api_key="sk-very-secret-123")
    body = client.get(f"/admin/episodes/llmendpoint/{endpoint.pk}/change/").content.decode()
    assert "sk-very-secret-123" not in body and 'name="api_key"' in body
    assert "sk-very-secret-123" not in repr(endpoint) and "sk-very-secret-123" not in repr(endpoint.engine_config())
    # saving the form with the key field left blank keeps the stored key
    data = {"name": "up", "protocol": "openai_chat", "base_url": "http://127.0.0.1:9/v1", "model": "m2",
            "api_key": "", "usd_per_mtok_in": "0", "usd_per_mtok_out": "0"}
    assert client.post(f"/admin/episodes/llmendpoint/{endpoint.pk}/change/", data).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.model == "m2" and endpoint.api_key == "sk-very-secret-123"
