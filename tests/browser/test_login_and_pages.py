"""The pages in a real browser: login, navigation without console errors, the sample repository,
the locally served plotly chart, and what a non-staff user is not offered."""
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
NAV = ["Repositories", "Bugs", "Flaky triage", "Teachers", "Episodes", "Training", "Dashboards"]


def log_in(page, username, password, path="/"):
    page.goto(path)
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()


def test_login_redirects_rejects_wrong_password_and_lands_on_requested_page(page, live_server, staff, page_errors):
    response = page.goto("/bugs/")
    assert response.status == 200
    assert re.search(r"/accounts/login/\?next=/bugs/$", page.url), page.url
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator("header nav")).to_have_count(0)  # no navigation before login

    page.locator("#id_username").fill("staffer")
    page.locator("#id_password").fill("not-the-password")
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    expect(page.locator("p.error")).to_contain_text("didn't match")
    assert "/accounts/login/" in page.url

    page.locator("#id_username").fill("staffer")
    page.locator("#id_password").fill("pw-staff-123")
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="Log in").click()
    assert nav.value.status == 200
    assert page.url == f"{live_server.url}/bugs/"
    expect(page.locator("header .who")).to_contain_text("staffer")
    expect(page.locator("header .who .badge")).to_have_text("staff")
    assert page_errors == []


def test_home_counts_and_navigation_open_without_errors(page, live_server, staff, page_errors):
    from episodes.models import Repository

    log_in(page, "staffer", "pw-staff-123")
    assert page.url == f"{live_server.url}/"
    counts = page.locator("#live-counts")
    expect(counts).to_contain_text("0 repositories")
    expect(counts).to_contain_text("bugs")
    expect(counts).to_contain_text("training runs")
    # The counts are live: htmx is loaded, and a refresh of the polled fragment shows a new row.
    page.wait_for_function("() => window.htmx !== undefined")
    Repository.objects.create(name="added-later", source="/nonexistent", pinned_commit="0" * 40)
    page.evaluate("() => htmx.ajax('GET', '/counts/', {target: '[hx-get]', swap: 'innerHTML'})")
    expect(page.locator("#live-counts")).to_contain_text("1 repository")

    for name in NAV:
        link = page.locator("header nav").get_by_role("link", name=name, exact=True)
        with page.expect_navigation() as nav:
            link.click()
        assert nav.value.status == 200, f"{name}: HTTP {nav.value.status} at {page.url}"
        expect(page.locator("header nav [aria-current=page]")).to_have_text(name)
        page.wait_for_load_state("load")
        assert page_errors == [], f"{name} ({page.url}): {page_errors}"


def test_repository_list_and_detail_show_sample_baseline(page, live_server, staff, sample_repo, page_errors):
    log_in(page, "staffer", "pw-staff-123", "/repositories/")
    row = page.locator("table tr", has=page.get_by_role("link", name="cartcalc", exact=True))
    expect(row).to_have_count(1)
    expect(row.locator(".status")).to_have_text("ready")
    n = len(sample_repo.passing_tests)
    expect(row.locator("td").nth(4)).to_contain_text(f"{n}/{len(sample_repo.baseline_tests)} in ")  # baseline

    row.get_by_role("link", name="cartcalc", exact=True).click()
    page.wait_for_url(f"**/repositories/{sample_repo.pk}/")
    expect(page.get_by_role("heading", name="Baseline tests")).to_be_visible()
    tests_table = page.locator("table.compact")
    assert sample_repo.baseline_tests, "the sample's baseline recorded no tests"
    expect(tests_table.locator("tr")).to_have_count(len(sample_repo.baseline_tests) + 1)  # + header
    some_test = sorted(sample_repo.baseline_tests)[0]
    expect(tests_table).to_contain_text(some_test)
    expect(page.locator("#baseline-report")).to_contain_text(f"{n} passing")
    expect(page.locator("#coverage-report")).to_contain_text("passing test(s)")  # the map is shown
    expect(page.get_by_role("button", name="Run baseline")).to_be_visible()  # staff may rerun it

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "repository.png"))  # the viewport: 180+ test rows follow
    assert page_errors == []


def test_dashboards_draw_plotly_chart_from_local_static(page, live_server, staff, page_errors):
    foreign = []

    def only_live_server(route):
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:  # a CDN or any other host: refused, so the chart can only come from our server
            foreign.append(route.request.url)
            route.abort()

    page.route("**/*", only_live_server)
    with page.expect_response(re.compile(r"/static/plotly/plotly\.min\.js$")) as plotly_js:
        log_in(page, "staffer", "pw-staff-123", "/dashboards/")
    assert page.url == f"{live_server.url}/dashboards/"
    assert plotly_js.value.status == 200
    chart = page.locator("#status-chart")
    expect(chart.locator(".plot-container svg.main-svg").first).to_be_visible()
    expect(chart.locator(".xtick")).not_to_have_count(0)  # the bars' axis got labels
    assert foreign == []
    assert page_errors == []


def test_reviewer_is_not_offered_run_baseline(page, live_server, reviewer, page_errors):
    from episodes.models import Repository

    repo = Repository.objects.create(name="cartcalc", source="/nonexistent", pinned_commit="0" * 40)
    log_in(page, "reviewer", "pw-review-123", f"/repositories/{repo.pk}/")
    expect(page.get_by_role("heading", name="cartcalc")).to_be_visible()
    expect(page.locator("header .who")).to_contain_text("reviewer")
    expect(page.locator("header .who .badge")).to_have_count(0)
    expect(page.get_by_role("button", name="Run baseline")).to_have_count(0)
    expect(page.locator(f"form[action$='/repositories/{repo.pk}/baseline/']")).to_have_count(0)
    assert page_errors == []
