"""The teachers page in a real browser, end to end: staff add an endpoint (the key never comes
back), test its connection inline, add a teacher, launch solving for the approved bug, watch
the progress panel update itself while the episode runs (real sandbox, real gateway, scripted
upstream), and open the solved episode."""
import pytest
from playwright.sync_api import expect

from episodes.solving import episodes as solving
from episodes.models import Episode

from tests.llm.fake_upstream import FakeUpstream
from tests.factories import policy

from .test_login_and_pages import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KEY = "sk-browser-secret-key-5150"


def test_staff_configure_launch_watch_and_open_the_episode(page, live_server, staff, approved_bug, engine_bug,
                                                            page_errors, redis_conn):
    with FakeUpstream() as up:
        up.fallback = policy(engine_bug.sample)
        log_in(page, "staffer", "pw-staff-123", "/teachers/")
        expect(page.get_by_role("heading", name="Teachers & endpoints")).to_be_visible()

        form = page.locator("#add-endpoint form")
        form.get_by_label("Name").fill("local")
        form.get_by_label("Protocol").select_option("openai_chat")
        form.get_by_label("Base url").fill(up.url)
        form.get_by_label("Model").fill("fake-model")
        form.get_by_label("API key").fill(KEY)
        with page.expect_navigation():
            form.get_by_role("button", name="Add endpoint").click()
        row = page.locator("#endpoint-table tr", has_text="local")
        expect(row).to_contain_text("set")
        assert KEY not in page.content()

        row.get_by_role("button", name="Test connection").click()  # htmx: the answer lands in the row
        expect(row.locator(".ping-result")).to_contain_text("OK", timeout=20_000)  # first SDK import is slow
        expect(row.locator(".ping-result")).to_contain_text("HTTP 200")

        form = page.locator("#add-teacher form")
        form.get_by_label("Name").fill("scripted")
        form.get_by_label("Endpoint").select_option(label="local (fake-model)")
        form.get_by_label("terms allow training use").select_option("true")
        with page.expect_navigation():
            form.get_by_role("button", name="Add teacher").click()
        expect(page.locator("#teacher-totals")).to_contain_text("scripted")

        launch = page.locator("#launch-form")
        launch.get_by_label("Teacher").select_option(label="scripted")
        expect(page.locator("#launch")).to_contain_text("1 approved bug")
        with page.expect_navigation():
            launch.get_by_role("button", name="Launch").click()
        panel = page.locator(".solve-progress")
        expect(panel).to_contain_text("0/1")
        expect(panel).to_contain_text("queued 1")

        # a worker's part, done here: the page keeps polling while the episode runs
        episode = Episode.objects.get()
        assert solving.run_episode(episode.pk) == "solved"
        expect(panel).to_contain_text("1/1", timeout=15_000)
        expect(panel).to_contain_text("solve rate 100%")

    page.reload()
    with page.expect_navigation():
        page.locator(f'#batch-episodes a[href="/episodes/{episode.pk}/"]').click()
    assert page.url.endswith(f"/episodes/{episode.pk}/")
    expect(page.locator("main")).to_contain_text("Solved")
    assert page_errors == [], page_errors
