"""Training in a real browser: a staff user launches a tiny SFT run from the form, a real `train`
worker trains the tiny model with TRL on CPU, and the loss chart gains points poll after poll
without a page reload; the EMA slider smooths exactly as the debiased EMA says."""
import subprocess

import django_rq
import pytest
from playwright.sync_api import expect

from tests.browser.test_login_and_pages import log_in
from tests.workers import manage, worker_env

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TRAIN_TIMEOUT_MS = 240_000  # worker start + the trainer's imports (~5-10 s) + a few tiny steps, on a busy CI box


def debiased_ema(values, weight):
    """What static/js/curves.js must draw for a smoothing weight (TensorBoard's debiased EMA)."""
    out, last = [], 0.0
    for n, y in enumerate(values, start=1):
        last = last * weight + (1 - weight) * y
        out.append(y if weight == 0 else last / (1 - weight ** n))
    return out


@pytest.fixture
def sft_set(db, settings):
    """A small SFT set built by the real builder from four solved episodes."""
    from episodes.models import Bug, Episode, Repository, Teacher
    from training.datasets import build_sft_dataset

    repo = Repository.objects.create(name="lib-a", source="/nonexistent/lib-a", pinned_commit="0" * 40)
    teacher = Teacher.objects.create(name="teach", terms_allow_training=True)
    for n in range(4):
        bug = Bug.objects.create(repository=repo, base_commit="0" * 40, patch=f"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-{n}\n+{n}!\n",
                                 verifier="import sys; sys.exit(0)", problem_statement=f"bug {n}", status="approved")
        Episode.objects.create(bug=bug, teacher=teacher, reward=1.0, status="solved", trajectory={
            "messages": [{"role": "user", "content": f"Fix bug {n}"}, {"role": "assistant", "content": f"Fixed bug {n}."}],
            "tools": [],
        })
    return build_sft_dataset("sft-browser", {"teacher": "teach", "heldout_fraction": 0.25})


@pytest.fixture
def tiny_model_built(settings):
    from training.tiny import ensure_tiny_model

    return ensure_tiny_model()  # built once per var dir; the form's "tiny" choice then resolves at once


def test_launch_a_tiny_run_and_watch_the_loss_chart_grow(page, live_server, staff, sft_set, tiny_model_built,
                                                         settings, redis_conn, page_errors, tmp_path):
    from training.models import TrainingRun

    log_in(page, "staffer", "pw-staff-123", "/training/")
    expect(page.locator(".empty")).to_contain_text("No training run yet")
    with page.expect_navigation():
        page.locator("#launch-link").click()

    # A form error first: a path that is no model is refused next to its field, nothing queued.
    page.locator("#id_base_model").select_option("other")
    page.locator("#id_base_model_path").fill(str(tmp_path))
    with page.expect_navigation():
        page.locator("#launch-button").click()
    expect(page.locator("#field-base_model_path .field-error")).to_contain_text("has no config.json")
    assert TrainingRun.objects.count() == 0
    assert page_errors == ["console: Failed to load resource: the server responded with a status of 400 (Bad Request) "
                           f"({live_server.url}/training/runs/launch/)"]  # the refused form, on purpose
    page_errors.clear()

    # Then the real launch: SFT of the tiny model on the set, a few steps, a checkpoint midway.
    expect(page.locator("#id_dataset")).to_have_value(str(sft_set.pk))
    page.locator("#id_method").select_option("sft_grpo")  # the form follows the method
    expect(page.locator("#field-rl_dataset")).to_be_visible()
    expect(page.locator("#id_hp_num_generations")).to_have_value(
        str(TrainingRun.DEFAULT_HYPERPARAMETERS["sft_grpo"]["num_generations"]))
    page.locator("#id_method").select_option("sft")
    expect(page.locator("#field-rl_dataset")).to_be_hidden()
    expect(page.locator("#field-hp_num_generations")).to_be_hidden()  # a GRPO-only knob
    page.locator("#id_base_model").select_option("tiny")
    expect(page.locator("#field-base_model_path")).to_be_hidden()
    page.locator("#id_hp_max_steps").fill("8")
    page.locator("#more-hyperparameters summary").click()
    page.locator("#id_hp_save_steps").fill("4")
    with page.expect_navigation(timeout=60_000):  # the run page loads plotly.js (~4.8 MB) from the live server
        page.locator("#launch-button").click()
    run = TrainingRun.objects.get()
    assert page.url == f"{live_server.url}/training/runs/{run.pk}/"
    assert (run.status, run.method, run.base_model) == ("queued", "sft", str(tiny_model_built))
    assert django_rq.get_queue("train").job_ids == [run.job_id]
    expect(page.locator("#run-status-badge")).to_have_text("queued")
    expect(page.locator("#curves-empty")).to_be_visible()

    # Record the loss trace's length after every poll, and mark the window to prove no reload.
    page.wait_for_function("() => window.bugforgeCurves !== undefined && window.Plotly !== undefined")
    page.evaluate("""() => {
        window.__noReload = true;
        window.__lossCounts = [];
        const curves = window.bugforgeCurves, draw = curves.draw.bind(curves);
        curves.draw = () => {
            draw();
            const div = document.getElementById("chart-loss");
            const raw = div && div.data ? div.data.find((t) => t.meta && t.meta.kind === "raw") : null;
            window.__lossCounts.push(raw ? raw.x.length : 0);
        };
    }""")

    log = open(tmp_path / "worker.log", "wb")
    worker = manage("rqworker", "train", "--burst", env=worker_env(settings), stdout=log, stderr=subprocess.STDOUT)
    try:
        page.wait_for_function("() => !window.bugforgeCurves.runs[0].active", timeout=TRAIN_TIMEOUT_MS)
        assert worker.wait(timeout=120) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        log.close()
    run.refresh_from_db()
    assert run.status == "succeeded", f"{run.error}\n--- worker ---\n{(tmp_path / 'worker.log').read_text()[-3000:]}"

    losses = [v for _, v in run.curves(["loss"])["loss"]]
    assert len(losses) == 8
    counts = page.evaluate("() => window.__lossCounts")
    assert page.evaluate("() => window.__noReload") is True
    assert counts[0] == 0 and counts[-1] == len(losses), counts
    assert all(a <= b for a, b in zip(counts, counts[1:])), counts  # points only ever get added
    assert len(set(counts)) >= 2, counts  # the chart grew while the page stayed open
    expect(page.locator("#curves-empty")).to_be_hidden()
    expect(page.locator("#chart-learning-rate .plot-container")).to_be_visible()
    expect(page.locator("#run-status-badge")).to_have_text("succeeded", timeout=10_000)
    expect(page.locator("#run-log-tail")).not_to_be_empty(timeout=10_000)
    expect(page.locator("#checkpoints")).to_contain_text("checkpoint-4")

    def trace(kind):
        return page.evaluate(f"""() => document.getElementById("chart-loss").data
            .find((t) => t.meta.kind === "{kind}").y""")

    # The EMA the chart draws is the debiased EMA of the stored values; raw stays as logged.
    for weight in (0.5, 0.9, 0.0):
        page.locator("#smoothing").fill(str(weight))
        expect(page.locator("#smoothing-value")).to_have_text(f"{weight:.2f}")
        assert trace("raw") == pytest.approx(losses)
        assert trace("smooth") == pytest.approx(debiased_ema(losses, weight), rel=1e-9)
    assert page_errors == []


def test_overlay_two_runs_from_the_list_and_watch_the_running_one_extend(page, live_server, staff, page_errors):
    """Tick two runs, overlay them: one trace per run on each chart (reward with its std band),
    the learning-rate schedule unsmoothed, other metrics behind "More metrics"; a point logged
    for the running run extends its trace without a reload."""
    from training.models import MetricPoint, TrainingRun

    runs = [TrainingRun.objects.create(name=name, method="grpo", base_model="/m", status=status, step=3, max_steps=10)
            for name, status in (("run-a", "running"), ("run-b", "succeeded"))]
    for i, run in enumerate(runs):
        MetricPoint.objects.bulk_create([
            MetricPoint(run=run, step=s, name=name, value=value)
            for s in (1, 2, 3)
            for name, value in (("reward", 0.1 * s + i), ("reward_std", 0.05), ("rewards/verifier_reward/mean", 0.1 * s),
                                ("learning_rate", 1e-6), ("grad_norm", s + i))
        ])
    log_in(page, "staffer", "pw-staff-123", "/training/")
    for run in runs:
        page.locator(f"#compare-{run.pk}").check()
    with page.expect_navigation(timeout=60_000):
        page.get_by_role("button", name="Overlay the ticked runs' curves").click()
    expect(page.get_by_role("heading", name="Compare 2 runs")).to_be_visible()
    page.wait_for_function("() => window.bugforgeCurves && document.getElementById('chart-reward')?.data")

    def traces(chart, kind):
        return page.evaluate(f"""() => document.getElementById("chart-{chart}").data
            .filter((t) => t.meta.kind === "{kind}").map((t) => [t.meta.run, t.name, t.x.length])""")

    assert traces("reward", "smooth") == [[runs[0].pk, "run-a", 3], [runs[1].pk, "run-b", 3]]
    assert len(traces("reward", "band")) == 4  # upper and lower edge per run
    assert [t[0] for t in traces("rewards-per-function", "smooth")] == [runs[0].pk, runs[1].pk]
    assert traces("learning-rate", "smooth") == [] and len(traces("learning-rate", "raw")) == 2
    expect(page.locator("#chart-loss")).to_have_count(0)  # no run logged a loss: no empty chart
    page.locator("#more-metrics summary").click()
    expect(page.locator("#other-metric")).to_have_value("grad_norm")
    expect(page.locator("#chart-other .plot-container")).to_be_visible()

    page.evaluate("() => { window.__noReload = true; }")
    MetricPoint.objects.create(run=runs[0], step=4, name="reward", value=0.9)
    page.wait_for_function(f"""() => document.getElementById("chart-reward").data
        .some((t) => t.meta.kind === "smooth" && t.meta.run === {runs[0].pk} && t.x.length === 4)""")
    assert traces("reward", "smooth")[1][2] == 3  # the finished run is not polled and keeps its points
    assert page.evaluate("() => window.__noReload") is True
    assert page_errors == []


def test_cancel_asks_for_confirmation_then_requests_the_stop(page, live_server, staff, page_errors):
    from training.models import TrainingRun

    run = TrainingRun.objects.create(name="long-run", method="sft", base_model="/m", status="running", step=2, max_steps=100)
    log_in(page, "staffer", "pw-staff-123", "/training/")
    with page.expect_navigation(timeout=60_000):
        page.get_by_role("link", name="long-run").click()
    messages = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Cancel run").click()
    assert messages and "stops at its next optimizer step" in messages[0]
    run.refresh_from_db()
    assert not run.cancel_requested  # dismissed: nothing sent

    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation(timeout=60_000):
        page.get_by_role("button", name="Cancel run").click()
    expect(page.locator(".flash")).to_contain_text("Cancel requested")
    expect(page.locator("#run-status")).to_contain_text("cancel requested")
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    run.refresh_from_db()
    assert run.cancel_requested
    assert page_errors == []


def test_build_an_sft_set_from_the_form_with_the_provenance_warning(page, live_server, staff, page_errors, settings,
                                                                    tmp_path):
    from episodes.models import Bug, Episode, Repository, Teacher
    from training.models import Dataset

    settings.VAR_DIR = tmp_path  # the live server builds into this test's own folder
    repo = Repository.objects.create(name="lib-b", source="/nonexistent/lib-b", pinned_commit="0" * 40)
    teachers = [Teacher.objects.create(name="vetted", terms_allow_training=True),
                Teacher.objects.create(name="unknown-terms", terms_allow_training=None)]
    for n in range(3):
        bug = Bug.objects.create(repository=repo, base_commit="0" * 40, patch=f"p{n}", verifier="v", status="approved")
        for teacher in teachers:
            Episode.objects.create(bug=bug, teacher=teacher, reward=1.0, status="solved", trajectory={
                "messages": [{"role": "user", "content": f"Fix {n}"}, {"role": "assistant", "content": f"{teacher.name} {n}"}],
                "tools": []})

    log_in(page, "staffer", "pw-staff-123", "/training/datasets/")
    expect(page.locator("#terms-warning")).to_contain_text("unknown-terms")
    expect(page.locator("#terms-included")).to_be_hidden()  # the default keeps vetted teachers only
    page.locator("#id_kind").select_option("rl")
    expect(page.locator("#field-teachers")).to_be_hidden()  # teachers filter SFT sets only
    page.locator("#id_kind").select_option("sft")
    page.locator("#id_name").fill("sft-from-form")
    page.get_by_label("also teachers whose terms are not recorded (flag unset)").check()
    expect(page.locator("#terms-included")).to_contain_text("INCLUDES episodes of teachers whose terms do not allow training: unknown-terms")
    page.locator("#id_heldout_fraction").fill("0.34")
    with page.expect_navigation():
        page.locator("#build-button").click()
    dataset = Dataset.objects.get(name="sft-from-form")
    assert page.url == f"{live_server.url}/training/datasets/{dataset.pk}/"
    assert dataset.train_rows + dataset.heldout_rows == 6 and dataset.filters["allow_unknown_terms"] is True
    expect(page.locator(".flash.warning").first).to_contain_text("unknown-terms")
    expect(page.locator("#manifest")).to_contain_text(dataset.content_hash)
    assert page_errors == []
