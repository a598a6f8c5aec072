"""The episode viewer in a real browser: filter the list, open an episode, unfold a long tool
output, follow a step to its raw call, and watch a running episode's page pick up a new call
and its reward without a reload (htmx polling), with no console errors."""
import pytest
from playwright.sync_api import expect

from episodes.models import Episode, LLMCall
from tests.trajectories.factories import make_world, recorded_episode

from .test_login_and_pages import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_filter_open_unfold_and_follow_a_call(page, live_server, reviewer, page_errors):
    world = make_world()
    episode = recorded_episode(world)
    Episode.objects.create(bug=world["bugs"][1], teacher=world["trusted"], status="unsolved", reward=0.0)

    log_in(page, "reviewer", "pw-review-123", "/episodes/")
    expect(page.locator("#episode-table tbody tr")).to_have_count(2)
    page.locator("select[name=reward]").select_option("1")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    rows = page.locator("#episode-table tbody tr")
    expect(rows).to_have_count(1)
    with page.expect_navigation():
        rows.first.get_by_role("link", name=str(episode.pk), exact=True).click()

    expect(page.locator("#provenance-warning")).to_be_visible()
    expect(page.locator(".tool-call .tool-name").first).to_have_text("bash")
    # the long test log is folded: its last line shows only once unfolded
    last_line = page.get_by_text("line 199 of the test log")
    expect(last_line).to_be_hidden()
    page.locator(".step-tool details summary").first.click()
    expect(last_line).to_be_visible()

    with page.expect_navigation():
        page.get_by_role("link", name="call #2").click()
    expect(page.locator("#call-response")).to_contain_text("All fixed.")
    expect(page.locator("#call-request")).not_to_contain_text("sk-client-secret")
    assert page_errors == []


def test_a_running_episode_updates_in_place(page, live_server, reviewer, page_errors):
    world = make_world()
    episode = recorded_episode(world)
    Episode.objects.filter(pk=episode.pk).update(status="running", reward=None)
    log_in(page, "reviewer", "pw-review-123", f"/episodes/{episode.pk}/")
    expect(page.locator("#reward")).to_contain_text("not graded")
    page.evaluate("window.__same_document = true")

    last = episode.llm_calls.order_by("-sequence").first()
    LLMCall.objects.create(episode=episode, protocol="anthropic", path="/v1/messages", sequence=3, request=last.request,
                           response={"type": "message", "role": "assistant", "content": [{"type": "text", "text": "A third call."}]},
                           status_code=200, tokens_in=5, tokens_out=7)
    Episode.objects.filter(pk=episode.pk).update(status="solved", reward=1.0)
    expect(page.locator("#reward")).to_contain_text("True", timeout=10_000)
    expect(page.locator("#llm-calls")).to_contain_text("5 / 7")
    assert page.evaluate("window.__same_document") is True  # updated by htmx, not a reload
    assert page_errors == []
