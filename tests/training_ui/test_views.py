"""The training pages: who sees and may do what, the launch and dataset forms' errors, the live
metrics endpoint, the run list's query count, and cancel."""
import json

import pytest

from tests.factories import STABLE_FIGURES
from django.urls import reverse

from episodes.models import AuditEvent, Teacher
from training.models import Dataset, MetricPoint, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def sft_set(db):
    return Dataset.objects.create(name="sft-a", kind="sft", train_rows=4, heldout_rows=1, content_hash="f" * 64,
                                  filters={"teachers": ["t1"], "provenance": "allowed"},
                                  manifest={"counts": {"train": 4, "heldout": 1}, "filters": {"teachers": ["t1"]}})


@pytest.fixture
def rl_set(db):
    return Dataset.objects.create(name="rl-a", kind="rl", train_rows=3, heldout_rows=1)


@pytest.fixture
def run(sft_set):
    run = TrainingRun.objects.create(name="run-a", method="sft", base_model="/models/x", dataset=sft_set,
                                     status="running", step=3, max_steps=10)
    for step, loss in [(1, 2.0), (2, 1.5), (3, 1.25)]:
        MetricPoint.objects.create(run=run, step=step, name="loss", value=loss)
    MetricPoint.objects.create(run=run, step=2, name="learning_rate", value=1e-4)
    return run


GET_VIEWS = [
    ("training_run_list", False), ("training_run_new", False), ("training_dataset_list", False),
    ("training_run_detail", True), ("training_run_status", True), ("training_run_log", True),
    ("training_run_metrics", True), ("training_evaluation_list", False), ("training_run_row", True),
]


@pytest.mark.parametrize("who", ["staff_client", "reviewer_client"])
@pytest.mark.parametrize("name,with_pk", GET_VIEWS)
def test_read_views_render_for_staff_and_reviewers(request, who, name, with_pk, run):
    client = request.getfixturevalue(who)
    response = client.get(reverse(name, args=[run.pk] if with_pk else []))
    assert response.status_code == 200
    assert client.get(reverse("training_dataset_detail", args=[run.dataset.pk])).status_code == 200
    assert client.get(reverse("training_run_compare"), {"runs": [run.pk]}).status_code == 200


@pytest.mark.parametrize("name", ["training_run_list", "training_dataset_list", "training_run_new"])
def test_empty_states_say_what_to_do_next(staff_client, name):
    body = staff_client.get(reverse(name)).content.decode()
    assert "building a dataset" in body or "Build one below" in body or "Build an SFT set" in body


def test_staff_get_the_forms_and_reviewers_do_not(staff_client, reviewer_client, run):
    for client, staff in ((staff_client, True), (reviewer_client, False)):
        detail = client.get(reverse("training_run_detail", args=[run.pk])).content.decode()
        assert ('id="cancel-form"' in detail) == staff
        assert ('id="launch-form"' in client.get(reverse("training_run_new")).content.decode()) == staff
        assert ('id="dataset-form"' in client.get(reverse("training_dataset_list")).content.decode()) == staff


@pytest.mark.parametrize("name,with_pk", [("training_run_cancel", True), ("training_run_launch", False),
                                          ("training_dataset_build", False)])
def test_changes_are_staff_only_and_post_only(reviewer_client, staff_client, run, name, with_pk):
    url = reverse(name, args=[run.pk] if with_pk else [])
    assert reviewer_client.post(url).status_code == 403
    assert staff_client.get(url).status_code == 405
    run.refresh_from_db()
    assert not run.cancel_requested and TrainingRun.objects.count() == 1 and Dataset.objects.count() == 1


@pytest.mark.sqlite
def test_cancel_sets_cancel_requested_and_records_who(staff_client, staff, run):
    response = staff_client.post(reverse("training_run_cancel", args=[run.pk]))
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    run.refresh_from_db()
    assert run.cancel_requested
    event = AuditEvent.objects.get(action="cancel_training_run")
    assert event.actor == staff and event.target_id == str(run.pk)
    assert event.before == {"status": "running"} and event.after == {"status": "running", "cancel_requested": True}
    body = staff_client.get(reverse("training_run_status", args=[run.pk])).content.decode()
    assert "cancel requested" in body and 'id="cancel-form"' not in body
    # a queued run is cancelled at once: the trail shows it went from queued to cancelled
    TrainingRun.objects.filter(pk=run.pk).update(status="queued", cancel_requested=False)
    staff_client.post(reverse("training_run_cancel", args=[run.pk]))
    event = AuditEvent.objects.filter(action="cancel_training_run").latest("id")
    assert event.before == {"status": "queued"} and event.after["status"] == "cancelled"


def test_cancelling_a_finished_run_changes_nothing(staff_client, run):
    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded")
    response = staff_client.post(reverse("training_run_cancel", args=[run.pk]), follow=True)
    assert "nothing to cancel" in response.content.decode()
    run.refresh_from_db()
    assert not run.cancel_requested


def test_failed_run_shows_its_traceback_in_a_pre(staff_client, run):
    TrainingRun.objects.filter(pk=run.pk).update(status="failed", error="Traceback (most recent call last):\n  boom <x>")
    body = staff_client.get(reverse("training_run_detail", args=[run.pk])).content.decode()
    assert '<pre class="error" id="run-error">Traceback (most recent call last):\n  boom &lt;x&gt;</pre>' in body
    status = staff_client.get(reverse("training_run_status", args=[run.pk])).content.decode()
    assert "hx-trigger" not in status  # a finished run is not polled any more


# The metrics endpoint ----------------------------------------------------------------------------

@pytest.mark.sqlite
def test_metrics_endpoint_groups_points_and_sends_only_new_ones(reviewer_client, run):
    url = reverse("training_run_metrics", args=[run.pk])
    first = reviewer_client.get(url).json()
    assert first["series"] == {"loss": {"x": [1, 2, 3], "y": [2.0, 1.5, 1.25]}, "learning_rate": {"x": [2], "y": [1e-4]}}
    assert first["active"] is True and first["status"] == "running" and first["more"] is False
    assert reviewer_client.get(url, {"after": first["cursor"]}).json()["series"] == {}

    MetricPoint.objects.create(run=run, step=4, name="loss", value=1.0)
    MetricPoint.objects.create(run=run, step=4, name="reward", value=0.25)
    later = reviewer_client.get(url, {"after": first["cursor"]}).json()
    assert later["series"] == {"loss": {"x": [4], "y": [1.0]}, "reward": {"x": [4], "y": [0.25]}}
    assert later["cursor"] > first["cursor"]

    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded", step=4)
    done = reviewer_client.get(url, {"after": later["cursor"]}).json()
    assert done["active"] is False and done["step"] == 4


def test_metrics_endpoint_pages_a_long_run(reviewer_client, run, monkeypatch):
    from training import views

    monkeypatch.setattr(views, "POINTS_PER_RESPONSE", 2)
    url = reverse("training_run_metrics", args=[run.pk])
    seen, after = [], 0
    for _ in range(5):
        page = reviewer_client.get(url, {"after": after}).json()
        seen += [(name, x) for name, s in page["series"].items() for x in s["x"]]
        after = page["cursor"]
        if not page["more"]:
            break
    assert sorted(seen) == [("learning_rate", 2), ("loss", 1), ("loss", 2), ("loss", 3)]


def test_metrics_endpoint_rejects_a_bad_cursor(reviewer_client, run):
    response = reviewer_client.get(reverse("training_run_metrics", args=[run.pk]), {"after": "x"})
    assert response.status_code == 400 and "cursor" in response.json()["error"]


def test_detail_page_embeds_the_points_so_far_and_serves_curves_js(reviewer_client, run):
    body = reviewer_client.get(reverse("training_run_detail", args=[run.pk])).content.decode()
    start = body.index('<script id="curves-config" type="application/json">') + len('<script id="curves-config" type="application/json">')
    config = json.loads(body[start:body.index("</script>", start)])
    assert config["runs"][0]["url"] == reverse("training_run_metrics", args=[run.pk])
    assert config["runs"][0]["initial"]["series"]["loss"]["y"] == [2.0, 1.5, 1.25]
    assert "js/curves.js" in body and "plotly/plotly.min.js" in body and "cdn" not in body.lower()


def test_compare_overlays_the_ticked_runs(reviewer_client, run):
    other = TrainingRun.objects.create(name="run-b", method="grpo", base_model="/m", status="succeeded")
    MetricPoint.objects.create(run=other, step=1, name="reward", value=0.5)
    body = reviewer_client.get(reverse("training_run_compare"), {"runs": [run.pk, other.pk]}).content.decode()
    assert "Compare 2 runs" in body
    start = body.index('type="application/json">') + len('type="application/json">')
    config = json.loads(body[start:body.index("</script>", start)])
    assert [r["name"] for r in config["runs"]] == ["run-a", "run-b"]
    response = reviewer_client.get(reverse("training_run_compare"), {"runs": ["nope"]})
    assert response.status_code == 302


# The run list ------------------------------------------------------------------------------------

def _make_runs(dataset, n, start):
    for i in range(start, start + n):
        r = TrainingRun.objects.create(name=f"bulk-{i}", method="grpo", base_model="/m", dataset=dataset, step=i, max_steps=50)
        MetricPoint.objects.bulk_create([MetricPoint(run=r, step=s, name=name, value=s * 0.1 + i)
                                         for s in (1, 2) for name in ("reward", "loss")])


@pytest.mark.sqlite
def test_run_list_shows_latest_reward_and_loss_without_n_plus_one(reviewer_client, rl_set, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _make_runs(rl_set, 2, 0)
    with CaptureQueriesContext(connection) as few:
        body = reviewer_client.get(reverse("training_run_list")).content.decode()
    # latest value at the highest step: step 2 of run bulk-1 → 2*0.1 + 1
    row = body[body.index('id="run-%d"' % TrainingRun.objects.get(name="bulk-1").pk):]
    row = row[:row.index("</tr>")]
    assert "1.200" in row and "1.2000" in row and 'href="/training/datasets/' in row
    _make_runs(rl_set, 30, 2)
    with django_assert_max_num_queries(len(few)):
        reviewer_client.get(reverse("training_run_list"))


# The launch form ---------------------------------------------------------------------------------

def _launch(client, **fields):
    data = {"dataset": "", "method": "sft", "base_model": "other", "base_model_path": "", "device": "cpu", **fields}
    return client.post(reverse("training_run_launch"), data)


def _field_errors(body: str, field: str) -> str:
    start = body.index(f'id="field-{field}"')
    return body[start:body.index("</div>", start)]


def test_launch_form_errors_are_shown_next_to_their_field(staff_client, rl_set, sft_set, tmp_path):
    response = _launch(staff_client, dataset=rl_set.pk, method="sft", base_model_path=str(tmp_path / "missing"))
    assert response.status_code == 400
    body = response.content.decode()
    assert "trains on an SFT (trajectories) dataset" in _field_errors(body, "dataset")
    assert "is not a folder on this host" in _field_errors(body, "base_model_path")

    (tmp_path / "not-a-model").mkdir()
    body = _launch(staff_client, dataset=sft_set.pk, method="grpo", base_model_path=str(tmp_path / "not-a-model"),
                   use_lora="on", lora_rank="").content.decode()
    assert "RL (bugs + verifiers)" in _field_errors(body, "dataset")
    assert "has no config.json" in _field_errors(body, "base_model_path")
    assert "LoRA needs a rank" in _field_errors(body, "lora_rank")

    body = _launch(staff_client, dataset=sft_set.pk, method="sft", base_model="nonsense").content.decode()
    assert "Select a valid choice" in _field_errors(body, "base_model")
    assert TrainingRun.objects.count() == 0


def test_launch_form_rejects_bad_hyperparameters(staff_client, sft_set, tmp_path):
    defaults = TrainingRun.DEFAULT_HYPERPARAMETERS["sft"]
    numeric = next(k for k, v in defaults.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    body = _launch(staff_client, dataset=sft_set.pk, **{f"hp_{numeric}": "-3"}).content.decode()
    assert "greater than or equal to" in _field_errors(body, f"hp_{numeric}")
    assert TrainingRun.objects.count() == 0


def test_launch_form_prefills_the_method_defaults(staff_client, sft_set):
    body = staff_client.get(reverse("training_run_new")).content.decode()
    for key, value in TrainingRun.DEFAULT_HYPERPARAMETERS["sft"].items():
        field = "lora_rank" if key == "lora_r" else f"hp_{key}"  # the LoRA rank box sets lora_r
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert f'value="{value}"' in _field_errors(body, field), key
        elif isinstance(value, bool):
            assert f'<option value="{str(value).lower()}" selected>' in _field_errors(body, field), key
    start = body.index('<script id="method-defaults" type="application/json">') + len('<script id="method-defaults" type="application/json">')
    assert json.loads(body[start:body.index("</script>", start)]) == json.loads(json.dumps(TrainingRun.DEFAULT_HYPERPARAMETERS))


def test_launch_queues_the_run_on_the_train_queue(staff_client, staff, redis_conn, tmp_path, settings,
                                                  django_capture_on_commit_callbacks):
    import django_rq

    settings.VAR_DIR = tmp_path
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (tmp_path / "sft-files" / "hf").mkdir(parents=True)
    dataset = Dataset.objects.create(name="sft-ready", kind="sft", train_rows=4, path=str(tmp_path / "sft-files"))
    with django_capture_on_commit_callbacks(execute=True):  # django-rq enqueues once the transaction commits
        response = _launch(staff_client, dataset=dataset.pk, method="sft", base_model_path=str(model),
                           hp_max_steps="3", hp_learning_rate="0.001", use_lora="on", lora_rank="4")
    assert response.status_code == 302, response.content.decode()[-3000:]
    run = TrainingRun.objects.get()
    assert response["Location"] == run.get_absolute_url()
    assert (run.status, run.method, run.base_model, run.device, run.created_by) == ("queued", "sft", str(model), "cpu", staff)
    assert run.hyperparameters["max_steps"] == 3 and run.hyperparameters["learning_rate"] == 0.001
    assert run.use_lora and run.hyperparameters["lora_r"] == 4
    assert run.max_steps == 3 and run.job_id
    assert django_rq.get_queue("train").job_ids == [run.job_id]
    assert AuditEvent.objects.filter(action="launch_training_run", actor=staff, target_id=str(run.pk)).exists()


def test_launch_shows_the_runners_refusal_next_to_the_field(staff_client, redis_conn, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    dataset = Dataset.objects.create(name="sft-gone", kind="sft", train_rows=4, path=str(tmp_path / "nowhere"))
    response = _launch(staff_client, dataset=dataset.pk, method="sft", base_model_path=str(model))
    assert response.status_code == 400
    assert "its files are missing" in _field_errors(response.content.decode(), "dataset")
    assert TrainingRun.objects.count() == 0


def test_sft_then_grpo_needs_an_rl_set(staff_client, sft_set, rl_set, tmp_path):
    body = _launch(staff_client, dataset=sft_set.pk, method="sft_grpo", base_model_path=str(tmp_path)).content.decode()
    assert "needs an RL dataset" in _field_errors(body, "rl_dataset")
    body = _launch(staff_client, dataset=sft_set.pk, rl_dataset=rl_set.pk, method="sft").content.decode()
    assert "takes one dataset" in _field_errors(body, "rl_dataset")


# Datasets ----------------------------------------------------------------------------------------

@pytest.fixture
def episodes(db):
    """Solved episodes of three teachers: terms allowed, unknown, and forbidden."""
    from episodes.models import Bug, Episode, Repository

    repo = Repository.objects.create(name="demo", source="/x", pinned_commit="a" * 40)
    trajectory = {"messages": [{"role": "user", "content": "fix it"}, {"role": "assistant", "content": "done"}],
                  "tools": []}
    teachers = [Teacher.objects.create(name=n, terms_allow_training=t) for n, t in
                (("ok-teacher", True), ("unknown-teacher", None), ("no-teacher", False))]
    for i in range(6):
        bug = Bug.objects.create(repository=repo, base_commit="a" * 40, patch=f"p{i}", verifier="v", status="approved",
                                 **STABLE_FIGURES)  # RL sets take stable bugs only
        for teacher in teachers:
            # distinct conversations (the builder deduplicates), each ending on the assistant's turn
            traj = {**trajectory, "messages": [{"role": "user", "content": f"fix it ({teacher.name} {i})"},
                                               *trajectory["messages"][1:]]}
            Episode.objects.create(bug=bug, teacher=teacher, status="solved", reward=1.0, trajectory=traj)
    return teachers


def _build(client, follow=False, **fields):
    data = {"kind": "sft", "name": "set-1", "provenance": "allowed", "split_by": "bug", "heldout_fraction": "0.2",
            "min_reward": "1", **fields}
    return client.post(reverse("training_dataset_build"), data, follow=follow)


def test_build_sft_set_from_the_form(staff_client, staff, episodes, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    response = _build(staff_client, name="sft-ok", heldout_fraction="0.34")
    dataset = Dataset.objects.get(name="sft-ok")
    assert response.status_code == 302 and response["Location"] == reverse("training_dataset_detail", args=[dataset.pk])
    assert dataset.kind == "sft" and dataset.created_by == staff
    assert dataset.train_rows + dataset.heldout_rows == 6 and dataset.heldout_rows >= 1  # ok-teacher only
    assert dataset.filters["allow_unknown_terms"] is False and dataset.filters["heldout_fraction"] == 0.34
    page = staff_client.get(response["Location"]).content.decode()
    assert dataset.content_hash in page and 'id="manifest"' in page and "Launch a run on this dataset" in page
    listing = staff_client.get(reverse("training_dataset_list")).content.decode()
    assert dataset.content_hash[:12] in listing and "split_by=bug" in listing
    assert AuditEvent.objects.filter(action="build_dataset", target_id=str(dataset.pk)).exists()


def test_build_warns_when_it_includes_unvetted_teachers(staff_client, episodes, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    listing = staff_client.get(reverse("training_dataset_list")).content.decode()
    assert 'id="terms-warning"' in listing and 'data-teacher="unknown-teacher" data-terms="unset"' in listing
    assert 'data-teacher="no-teacher" data-terms="false"' in listing and 'data-teacher="ok-teacher"' not in listing

    response = _build(staff_client, name="sft-wide", provenance="any", follow=True)
    body = response.content.decode()
    assert "may include data from teachers whose terms" in body and "unknown-teacher" in body and "no-teacher" in body
    dataset = Dataset.objects.get(name="sft-wide")
    assert dataset.train_rows + dataset.heldout_rows == 18
    assert dataset.manifest["warnings"]  # the builder recorded the provenance warning too
    assert any("terms" in w for w in dataset.manifest["warnings"])
    detail = staff_client.get(reverse("training_dataset_detail", args=[dataset.pk])).content.decode()
    assert "Provenance: this dataset includes episodes whose teacher" in detail


def test_build_errors_are_shown_on_the_form(staff_client, episodes, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    response = _build(staff_client, name="bad name!", heldout_fraction="1.5")
    body = response.content.decode()
    assert response.status_code == 400
    assert "Enter a valid" in _field_errors(body, "name") and "less than or equal to 0.95" in _field_errors(body, "heldout_fraction")

    body = _build(staff_client, name="none-match", teachers=["unknown-teacher"]).content.decode()
    assert 'id="form-errors"' in body and "no successful episodes match these filters" in body and "unknown terms" in body
    from episodes.models import Repository

    Repository.objects.create(name="no-bugs", source="/y", pinned_commit="b" * 40)
    body = _build(staff_client, name="rl-none", kind="rl", repositories=["no-bugs"]).content.decode()
    assert "no bugs match these filters" in body
    assert not Dataset.objects.filter(name__in=["none-match", "rl-none"]).exists()
    rl = _build(staff_client, name="rl-ok", kind="rl", repositories=["demo"], heldout_fraction="0.34")
    assert rl.status_code == 302 and Dataset.objects.get(name="rl-ok").kind == "rl"

    Dataset.objects.create(name="taken", kind="sft")
    assert "exists already" in _field_errors(_build(staff_client, name="taken").content.decode(), "name")


# Evaluations -------------------------------------------------------------------------------------

def test_evaluations_compare_student_teacher_and_base(reviewer_client, run, sft_set):
    from training.engine.eval_maths import report
    from training.models import Evaluation

    assert "No evaluation yet" in reviewer_client.get(reverse("training_evaluation_list")).content.decode()

    def attempts(solved_per_bug):  # 4 bugs × 2 attempts; solved_per_bug[i] of them succeed
        return [{"bug_id": b, "repository": "demo", "difficulty": "<15m", "reward": 1.0 if a < s else 0.0}
                for b, s in enumerate(solved_per_bug) for a in range(2)]

    figures = {}
    for name, subject, solved in (("student", "checkpoint", [2, 1, 1, 0]), ("teacher", "teacher", [2, 2, 1, 0]),
                                  ("base", "base", [0, 0, 0, 0])):
        results = report(attempts(solved), ks=(1, 2))
        figures[name] = results["overall"]
        Evaluation.objects.create(name=name, subject=subject, dataset=sft_set, k=2, status="succeeded",
                                  run=run if subject == "checkpoint" else None, results=results)
    body = reviewer_client.get(reverse("training_evaluation_list")).content.decode()
    table = body[body.index(f'id="evaluations-{sft_set.pk}"'):]
    for name, overall in figures.items():
        row = table[table.index(f">{name}"):]
        row = row[:row.index("</tr>")]
        lo, hi = overall["pass@1_clopper_pearson"]
        assert f"<b>{round(overall['pass@1'] * 100)}%</b>" in row, name
        assert f"[{lo:.2f}, {hi:.2f}]" in row, name
        assert f"pass@2 <b>{round(overall['pass@2'] * 100)}%</b>" in row, name
    assert figures["student"]["pass@1"] == 0.5 and figures["base"]["pass@1"] == 0  # the fixture's own sanity
    detail = reviewer_client.get(reverse("training_run_detail", args=[run.pk])).content.decode()
    assert 'id="run-evaluations"' in detail and "pass@1 50%" in detail


def test_launch_a_run_like_a_finished_one(staff_client, sft_set, rl_set, reviewer_client):
    source = TrainingRun.objects.create(
        name="sg", method="sft_grpo", base_model="/somewhere/model", dataset=sft_set, rl_dataset=rl_set,
        status="succeeded", use_lora=True, device="cpu",
        hyperparameters={**TrainingRun.DEFAULT_HYPERPARAMETERS["sft_grpo"], "max_steps": 7, "sft_max_steps": 3,
                         "lora_r": 8, "use_vllm": True},
    )
    detail = staff_client.get(reverse("training_run_detail", args=[source.pk])).content.decode()
    assert f'href="/training/runs/new/?from={source.pk}"' in detail
    assert "launch-like-this" not in reviewer_client.get(reverse("training_run_detail", args=[source.pk])).content.decode()
    body = staff_client.get(reverse("training_run_new"), {"from": source.pk}).content.decode()
    assert '<option value="sft_grpo" selected>' in _field_errors(body, "method")
    assert f'<option value="{rl_set.pk}" selected>' in _field_errors(body, "rl_dataset")
    assert '<option value="other" selected>' in _field_errors(body, "base_model")
    assert 'value="/somewhere/model"' in _field_errors(body, "base_model_path")
    assert 'value="7"' in _field_errors(body, "hp_max_steps") and 'value="3"' in _field_errors(body, "hp_sft_max_steps")
    assert 'value="8"' in _field_errors(body, "lora_rank") and "checked" in _field_errors(body, "use_lora")
    assert '<option value="true" selected>' in _field_errors(body, "hp_use_vllm")
    # its curves mark where the GRPO phase starts on the shared step axis
    start = detail.index('<script id="curves-config" type="application/json">') + len('<script id="curves-config" type="application/json">')
    assert json.loads(detail[start:detail.index("</script>", start)])["runs"][0]["grpo_from_step"] == 4


def test_configured_model_folders_are_offered(staff_client, sft_set, settings, tmp_path):
    (tmp_path / "qwen-small").mkdir()
    (tmp_path / "qwen-small" / "config.json").write_text("{}")
    (tmp_path / "not-a-model").mkdir()
    settings.BUGFORGE_MODEL_DIRS = [tmp_path, tmp_path / "missing"]
    field = _field_errors(staff_client.get(reverse("training_run_new")).content.decode(), "base_model")
    assert f'<option value="{tmp_path / "qwen-small"}">' in field and "not-a-model" not in field
    assert '<option value="tiny" selected>' in field and '<option value="other">' in field


@pytest.fixture
def heldout_set(episodes):
    """An SFT set whose manifest holds two of the episodes' bugs out."""
    from episodes.models import Bug

    bug_ids = list(Bug.objects.order_by("id").values_list("pk", flat=True)[:2])
    return Dataset.objects.create(name="with-heldout", kind="sft", train_rows=4, heldout_rows=2,
                                  manifest={"bugs": {"train": [], "heldout": bug_ids}})


def _evaluate(client, **fields):
    return client.post(reverse("training_evaluation_start"), {"k": "1", **fields})


def test_evaluation_form_errors_are_shown_next_to_their_field(staff_client, heldout_set, run, tmp_path):
    body = _evaluate(staff_client, dataset=heldout_set.pk, subject="checkpoint").content.decode()
    assert "Choose a run, or type a model path." in _field_errors(body, "run")
    body = _evaluate(staff_client, dataset=heldout_set.pk, subject="teacher", k="0").content.decode()
    assert "Choose the teacher." in _field_errors(body, "teacher") and "greater than or equal to 1" in _field_errors(body, "k")
    response = _evaluate(staff_client, dataset=heldout_set.pk, subject="base", model_path=str(tmp_path / "nope"))
    assert response.status_code == 400
    assert "model not found" in _field_errors(response.content.decode(), "model_path")
    body = _evaluate(staff_client, dataset=heldout_set.pk, subject="teacher", teacher="ok-teacher").content.decode()
    assert "needs a teacher with an LLM endpoint" in _field_errors(body, "teacher")
    from training.models import Evaluation
    assert not Evaluation.objects.exists()


def test_evaluate_a_teachers_existing_episodes(staff_client, staff, heldout_set, redis_conn,
                                                django_capture_on_commit_callbacks):
    import django_rq
    from training.models import Evaluation

    with django_capture_on_commit_callbacks(execute=True):
        response = _evaluate(staff_client, dataset=heldout_set.pk, subject="episodes", teacher="ok-teacher", k="1")
    ev = Evaluation.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"#evaluation-{ev.pk}")
    assert (ev.subject, ev.teacher.name, ev.status, ev.progress["total"]) == ("episodes", "ok-teacher", "queued", 2)
    assert django_rq.get_queue("solve").job_ids == [ev.job_id]
    assert AuditEvent.objects.filter(action="start_evaluation", actor=staff, target_id=str(ev.pk)).exists()
    row = staff_client.get(reverse("training_evaluation_row", args=[ev.pk])).content.decode()
    assert f'<tbody id="evaluation-{ev.pk}"' in row and "hx-trigger" in row  # polled while queued

    from training.evaluations import run_evaluation

    assert run_evaluation(ev.pk) == "succeeded"  # the job itself, here: counts the existing episodes
    row = staff_client.get(reverse("training_evaluation_row", args=[ev.pk])).content.decode()
    assert "hx-trigger" not in row and "<b>100%</b>" in row  # every held-out bug was solved by ok-teacher


def test_evaluation_options_reach_the_row(staff_client, run, heldout_set, tmp_path, redis_conn):
    from training.models import Evaluation

    model = tmp_path / "base"
    model.mkdir()
    (model / "config.json").write_text("{}")
    response = _evaluate(staff_client, dataset=heldout_set.pk, subject="base", model_path=str(model), k="2",
                         temperature="0", max_new_tokens="64")
    assert response.status_code == 302
    ev = Evaluation.objects.get()
    assert (ev.subject, ev.model_path, ev.k) == ("base", str(model), 2)
    assert ev.options == {"temperature": 0.0, "max_new_tokens": 64}  # 0 is a value (greedy), not "unset"


def test_a_run_page_proposes_evaluating_its_final_model(staff_client, run):
    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded", final_model="/runs/1/sft/final")
    detail = staff_client.get(reverse("training_run_detail", args=[run.pk])).content.decode()
    assert f'href="/training/evaluations/?run={run.pk}#evaluate"' in detail
    body = staff_client.get(reverse("training_evaluation_list"), {"run": run.pk}).content.decode()
    assert f'<option value="{run.pk}" selected>' in _field_errors(body, "run")
    assert '<option value="checkpoint" selected>' in _field_errors(body, "subject")


def test_non_finite_values_become_gaps_not_broken_json(reviewer_client, run):
    MetricPoint.objects.create(run=run, step=4, name="grad_norm", value=float("nan"))
    MetricPoint.objects.create(run=run, step=5, name="grad_norm", value=float("inf"))
    MetricPoint.objects.create(run=run, step=6, name="grad_norm", value=0.5)
    response = reviewer_client.get(reverse("training_run_metrics", args=[run.pk]))
    assert json.loads(response.content)["series"]["grad_norm"] == {"x": [4, 5, 6], "y": [None, None, 0.5]}
    body = reviewer_client.get(reverse("training_run_detail", args=[run.pk])).content.decode()
    assert "NaN" not in body and "Infinity" not in body
