"""Walk the whole URL conf: anonymous users are sent to login everywhere, and every view
either refuses POST (read-only) or is staff-only (403 for a logged-in non-staff user)."""
import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

PUBLIC = {"login"}  # the login page itself


def walk(resolver, prefix=""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def concrete(route: str) -> str:
    """A request path for a route: converters get a plausible value, regex anchors go."""
    path = re.sub(r"<int:\w+>", "1", route)
    path = re.sub(r"<(?:str|slug):\w+>", "x", path)
    path = re.sub(r"<path:\w+>", "x/y", path)
    path = re.sub(r"\(\?P<\w+>[^)]*\)", "1", path)
    return "/" + path.replace("^", "").replace("$", "").replace("\\", "")


OWN_ROUTES = [
    (route, p) for route, p in walk(get_resolver())
    if not route.startswith("admin/") and (p.name or "") not in PUBLIC
]


def test_the_walk_found_the_app():
    names = {p.name for _, p in OWN_ROUTES}
    assert {"home", "bug_list", "bug_validate", "repository_baseline", "training_run_list"} <= names


@pytest.mark.parametrize("route,pattern", OWN_ROUTES + [(r, p) for r, p in walk(get_resolver()) if r.startswith("admin/rq")][:3],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_anonymous_is_sent_to_login(client, route, pattern):
    for method in (client.get, client.post):
        response = method(concrete(route))
        assert response.status_code == 302, (route, response.status_code)
        assert "/login/" in response["Location"]


@pytest.mark.parametrize(
    "route,pattern",
    [(r, p) for r, p in OWN_ROUTES if p.name != "logout"],  # logging yourself out changes no data
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_non_staff_cannot_change_anything(reviewer_client, route, pattern):
    response = reviewer_client.post(concrete(route), {"n": "1"})
    if getattr(pattern.callback, "changes_state", False):
        assert response.status_code == 403, route
    else:
        assert response.status_code == 405, f"{route} accepts POST but is not staff-only"


def test_queue_dashboard_is_staff_only(reviewer_client, staff_client):
    assert reviewer_client.get("/admin/rq/").status_code == 302  # to the admin login
    assert staff_client.get("/admin/rq/").status_code == 200


def test_csrf_is_enforced(reviewer, staff):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.post("/bugs/1/validate/").status_code == 403
