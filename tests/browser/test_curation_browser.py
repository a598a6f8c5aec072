"""Curation in a real browser: filter bugs and approve with the keyboard, rerun a flaky
verifier through a real RQ worker and watch the run count grow, and the pass-rate dashboards
draw every chart (plotly served locally) with clickable bars and no console errors."""
import re
import subprocess
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from episodes.models import AuditEvent, Bug, Episode, InjectionBatch, LLMCall, Repository, Review, Teacher

from ..workers import manage, worker_env
from .test_login_and_pages import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _bug(repo, status, n, **kw):
    return Bug.objects.create(repository=repo, base_commit="a" * 40, patch=f"--- a/m.py\n+++ b/m.py\n-x = {n}\n+x = {n + 1}\n",
                              verifier="print('ok')", status=status, target=f"m.py::f{n}", **kw)


def test_filter_bugs_and_approve_with_the_keyboard(page, live_server, staff, page_errors):
    repo = Repository.objects.create(name="demo", source="/x", pinned_commit="a" * 40, status="ready")
    older = _bug(repo, "valid", 1, problem_statement="Totals are off by one cent.")
    newer = _bug(repo, "valid", 2, problem_statement="Tax is applied twice.")
    _bug(repo, "invalid", 3)

    log_in(page, "staffer", "pw-staff-123", "/bugs/")
    page.locator("select[name=status]").select_option("valid")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    rows = page.locator("#bug-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("aria-selected", "true")

    # ? opens the help, Escape closes it
    page.keyboard.press("?")
    expect(page.locator("#keyboard-help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#keyboard-help")).to_be_hidden()
    # / focuses the search; keys typed there are text, not shortcuts
    page.keyboard.press("/")
    expect(page.locator("#bug-search")).to_be_focused()
    page.keyboard.type("jk")
    expect(page.locator("#bug-search")).to_have_value("jk")
    expect(rows.nth(0)).to_have_attribute("aria-selected", "true")
    page.locator("#bug-search").fill("")
    page.keyboard.press("Escape")
    expect(page.locator("#bug-search")).not_to_be_focused()

    # j moves to the older bug; a approves it through the rubric form
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_attribute("aria-selected", "true")
    expect(rows.nth(1)).to_have_attribute("data-pk", str(older.pk))
    with page.expect_navigation():
        page.keyboard.press("a")
    expect(page.locator(".flash")).to_contain_text(f"Bug {older.pk}: your approve is saved; the bug is now approved")
    older.refresh_from_db()
    assert older.status == "approved"
    review = Review.objects.get(bug=older)
    assert (review.reviewer, review.verdict, review.underspecified, review.rejects_valid_fixes) == (staff, "approve", 0, 0)
    event = AuditEvent.objects.get(action="review", target_id=str(older.pk))
    assert event.before["status"] == "valid" and event.after["status"] == "approved" and event.actor == staff
    assert "status=valid" in page.url  # still the same filter: the approved bug left it
    expect(rows).to_have_count(1)

    # on the bug page: 2 sets the difficulty, a approves and moves on (the filter is exhausted: back to the list)
    with page.expect_navigation():
        page.keyboard.press("o")
    assert re.search(rf"/bugs/{newer.pk}/\?status=valid&sort=-created$", page.url), page.url
    expect(page.locator("#problem-statement")).to_contain_text("Tax is applied twice.")
    page.keyboard.press("2")
    expect(page.locator("#id_difficulty")).to_have_value("15m-1h")
    with page.expect_navigation():
        page.keyboard.press("a")
    assert re.search(r"/bugs/\?status=valid&sort=-created$", page.url), page.url
    expect(page.locator(".empty")).to_contain_text("No bug matches this filter")
    newer.refresh_from_db()
    assert (newer.status, newer.difficulty) == ("approved", "15m-1h")
    assert page_errors == []


def test_flaky_verifier_rerun_grows_the_run_grid(page, live_server, staff, sample_repo, redis_conn, settings, page_errors):
    from episodes.engine.repos.samples import FLAKY_VERIFIER
    from tests.test_jobs import boundary_patch

    bug = Bug.objects.create(repository=sample_repo, base_commit=sample_repo.pinned_commit, status="flaky",
                             patch=boundary_patch(sample_repo), verifier=FLAKY_VERIFIER, target="cartcalc/shipping.py",
                             clean_runs=5, clean_passes=3, buggy_runs=5, buggy_fails=5, flip_rate=0.5,
                             flake_upper_bound=0.8)
    log_in(page, "staffer", "pw-staff-123", "/flaky/")
    row = page.locator(f"#flaky-table tr[data-pk='{bug.pk}']")
    expect(row).to_contain_text("3/5")
    with page.expect_navigation():
        row.get_by_role("link", name="triage →").click()
    expect(page.locator("#run-count")).to_have_text("0")
    page.locator("#rerun-form input[name=n]").fill("1")
    with page.expect_navigation():
        page.locator("#rerun-form").get_by_role("button", name="Rerun").click()
    expect(page.locator(".flash")).to_contain_text("1 more clean and 1 more buggy runs")
    expect(page.locator("#rerun-progress")).to_contain_text("0/2 runs")

    worker = manage("rqworker", "verify", "--burst", env=worker_env(settings),
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = worker.communicate(timeout=180)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, out[-3000:]
    # the page polls itself: no reload, the grid and the figures fill in
    expect(page.locator("#run-count")).to_have_text("2", timeout=20_000)
    expect(page.locator("#rerun-progress")).to_contain_text("2/2 runs")
    expect(page.locator("#run-grid .cell")).to_have_count(2)
    bug.refresh_from_db()
    assert bug.clean_runs + bug.buggy_runs == 2  # the figures now count the rerun runs only (this verifier's window)
    assert AuditEvent.objects.filter(action="enqueue_reruns", target_id=str(bug.pk), actor=staff).exists()
    assert page_errors == []


def test_dashboards_draw_every_chart_and_bars_link_to_rows(page, live_server, staff, page_errors, settings):
    settings.BUGFORGE_DASHBOARD_CACHE_S = 0
    repo = Repository.objects.create(name="demo", source="/x", pinned_commit="a" * 40, status="ready")
    batch = InjectionBatch.objects.create(repository=repo, method="llm_modify", requested=2)
    for n, (status, method, operator) in enumerate([
        ("valid", "procedural", "flip_comparison"), ("approved", "procedural", "off_by_one"),
        ("invalid", "procedural", "off_by_one"), ("flaky", "procedural", "flip_comparison"),
        ("valid", "llm_modify", ""),
    ]):
        bug = _bug(repo, status, n, method=method, operator=operator, batch=batch if method == "llm_modify" else None)
    LLMCall.objects.create(batch=batch, protocol="openai_chat", cost_usd=Decimal("0.25"))
    teacher = Teacher.objects.create(name="teacher-a")
    Episode.objects.create(bug=bug, teacher=teacher, status="solved", cost_usd=Decimal("0.5"))
    Episode.objects.create(bug=bug, teacher=teacher, status="unsolved", cost_usd=Decimal("0.5"))
    Review.objects.create(bug=bug, reviewer=staff, verdict="approve", difficulty="<15m")

    log_in(page, "staffer", "pw-staff-123", "/dashboards/")
    charts = page.locator(".dash-chart")
    expect(charts).to_have_count(9)  # invalid bugs by reason too
    for i in range(8):
        chart = charts.nth(i)
        expect(chart).to_have_attribute("data-drawn", "1")
        expect(chart.locator("svg.main-svg").first).to_be_visible()
    assert page_errors == []

    # a bar of the stacked yield chart opens exactly the bugs it counts
    yield_chart = page.locator("#chart-yield-method")
    yield_chart.scroll_into_view_if_needed()
    bars = yield_chart.locator(".trace.bars .point path")
    boxes = [bars.nth(i).bounding_box() for i in range(bars.count())]
    box = max((b for b in boxes if b), key=lambda b: b["width"] * b["height"])  # a zero-height bar is not clickable
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)  # plotly clicks the point it hovers
    expect(yield_chart.locator(".hoverlayer .hovertext")).not_to_have_count(0)
    with page.expect_navigation():
        page.mouse.click(x, y)
    assert "/bugs/?" in page.url and "status=" in page.url and "method=" in page.url, page.url
    expect(page.locator("#bug-table tbody tr")).not_to_have_count(0)

    # the filter narrows every chart; an empty range says what to do next
    page.goto("/dashboards/?since=2001-01-01&until=2001-01-02")
    expect(page.locator(".dash-chart")).to_have_count(0)
    expect(page.locator("#section-yield-method .empty")).to_contain_text("plant a batch")
    assert page_errors == []
