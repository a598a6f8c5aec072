"""axe-core (vendored: tests/browser/vendor/axe-core, 4.10.3 from npm, MPL-2.0) on the product's
pages in Chromium, at 1280 and 800 px: no violation, and at 800 px no page wider than the window."""
import json
from pathlib import Path

import pytest

from .test_login_and_pages import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
AXE = Path(__file__).with_name("vendor") / "axe-core" / "axe.min.js"
PAGES = ["/", "/repositories/", "/repositories/new/", "/bugs/", "/flaky/", "/teachers/", "/episodes/", "/training/",
         "/dashboards/", "/sandbox/", "/accounts/login/"]


def violations(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]} for v in result]


def detail_pages() -> list[str]:
    """A repository, a reviewed bug, a flaky bug, a teacher and an episode, as the pages show them."""
    from episodes.models import Bug, Episode, LLMEndpoint, Repository, Teacher

    repo = Repository.objects.create(name="cartcalc", source="/x", pinned_commit="a" * 40, status="ready")
    patch = "--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    bug = Bug.objects.create(repository=repo, base_commit="a" * 40, patch=patch, verifier="import m\nassert m.x == 1\n",
                             status="valid", problem_statement="`m.x` is `2`:\n\n```\nassert m.x == 1\n```",
                             fail_to_pass=["tests/test_m.py::test_x"])
    flaky = Bug.objects.create(repository=repo, base_commit="a" * 40, patch=patch.replace("x = 2", "x = 3"), verifier="v", status="flaky",
                               invalid_reason="the verifier disagreed with itself")
    endpoint = LLMEndpoint.objects.create(name="up", protocol="anthropic", base_url="http://127.0.0.1:9", model="m")
    teacher = Teacher.objects.create(name="claude", endpoint=endpoint)
    episode = Episode.objects.create(bug=bug, teacher=teacher, status="solved", reward=1.0, exit_reason="submitted",
                                     trajectory={"messages": [{"role": "system", "content": "fix it"},
                                                              {"role": "user", "content": "the bug"},
                                                              {"role": "assistant", "content": "done"}], "tools": []})
    return [f"/repositories/{repo.pk}/", f"/bugs/{bug.pk}/", f"/flaky/{flaky.pk}/", f"/teachers/{teacher.pk}/",
            f"/episodes/{episode.pk}/"]


def test_axe_finds_no_violation(page, live_server, staff):
    log_in(page, "staffer", "pw-staff-123")
    found = {}
    pages = PAGES + detail_pages()
    for width in (1280, 800):
        page.set_viewport_size({"width": width, "height": 900})
        for path in pages:
            page.goto(path)
            page.wait_for_load_state("networkidle")
            v = violations(page)
            if v:
                found[f"{path} @{width}px"] = v
            if width == 800:  # the layout holds: nothing makes the page scroll sideways
                overflow = page.evaluate("document.documentElement.scrollWidth")
                if overflow > width:
                    found[f"{path} @{width}px"] = found.get(f"{path} @{width}px", []) + [{"id": "page wider than the window", "impact": "layout", "nodes": [overflow]}]
    Path("/tmp/axe.json").write_text(json.dumps(found, indent=1))
    assert not found, json.dumps(found, indent=1)[:4000]


def tabs_until(page, selector: str, limit: int = 80) -> int:
    """How many presses of Tab from the top of the page until focus is inside ``selector``."""
    page.reload()
    for n in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate(f"!!document.activeElement.closest({selector!r})"):
            return n
    return limit + 1


def test_the_review_is_two_tabs_away_and_leads_the_page(page, live_server, staff):
    bug_page = detail_pages()[1]
    log_in(page, "staffer", "pw-staff-123", path=bug_page)
    plain = tabs_until(page, "#review-form")  # tabbing through everything above it
    print(f"Tabs to the review form: {plain} without the skip link")
    assert plain <= 25
    page.reload()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the review"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("!!document.activeElement.closest('#review-form')")  # 3 Tabs and Enter
    # statement, patch and review come before anything that re-runs
    order = page.evaluate("""() => ['#problem-statement', '#bug-diff', '#review-form', '.actions']
        .map(s => document.querySelector(s).getBoundingClientRect().top + window.scrollY)""")
    assert order == sorted(order), order  # statement, diff, review, then the re-run buttons
