"""No page answers 500: every URL, as anonymous, non-staff and staff, with hostile path ids,
query parameters and form values (huge integers, impossible dates, unicode, NUL bytes, very
long strings, wrong types). Bad input is a 4xx; a redirect to the login page for anonymous."""
import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db(transaction=True)  # each request commits: one error cannot poison the rest

HUGE = "9" * 30
PATH_VALUES = {"int": [HUGE], "slug": ["é-" + "a" * 300], "str": ["é" + "a" * 300], "path": [HUGE, "a/../b"]}
HOSTILE = [HUGE, "-1", "2026-02-30", "\x00", "ünï€😀", "x" * 5000, "1,2,x," + HUGE, "[]"]
# every query parameter a view reads (grep GET.get / POST.get), each set to the hostile value
PARAMS = ["action", "after", "archived", "bug", "count", "dataset", "decision", "endpoint", "fresh", "from",
          "integrity", "method", "n", "next", "notes", "operators", "page", "quarantined", "reason", "ref",
          "repository", "reward", "run", "runs", "since", "status", "target_percent", "teacher", "until",
          "ids", "bugs", "k", "name", "source", "q", "o", "p",
          # and every form field a staff POST carries (forms.py, teacher_forms.py, training/forms.py)
          "api_key", "base_model", "base_model_path", "difficulty", "field", "first_batch", "flaky",
          "heldout_fraction", "include_flaky", "include_suspicious", "include_valid", "install_command", "kind",
          "lora_rank", "max_cost_usd", "max_flake_rate", "max_length", "max_new_tokens", "max_steps", "max_tokens",
          "max_wall_s", "min_reward", "model_path", "operator", "pip_packages", "provenance", "python", "rated",
          "rejects_valid_fixes", "repositories", "rl_dataset", "scope", "sort", "split_by", "subject", "teachers",
          "temperature", "terms_allow_training", "test_command", "underspecified", "use_lora", "verdict",
          "verifier", "protocol", "base_url", "model"]
# logout ends the session under test; django-rq's own admin pages and Django's autocomplete view
# are third-party code (the latter answers a missing app_label with a KeyError)
PARSED = [HUGE, "-1", "2026-02-30", "1,2,x," + HUGE]  # what int, date and id-list parsing trip on
PROBES = {"sandbox/"}  # runs the sandbox probes on every view (~0.6 s) and reads no parameter: one GET each
COMMON = ["page", "bug", "since", "until", "runs", "repository", "teacher", "status", "run", "dataset", "n"]
SKIP = re.compile(r"^(accounts/logout/|admin/logout/|admin/rq/|admin/django_rq/|admin/autocomplete/)")


def routes():
    def walk(patterns, prefix=""):
        for p in patterns:
            route = getattr(p.pattern, "_route", None)
            if route is None:  # a regex pattern (the admin's app index): not walked
                continue
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + route)
            elif isinstance(p, URLPattern):
                yield prefix + route

    return sorted({r for r in walk(get_resolver().url_patterns) if not SKIP.match(r)})


def fill(route: str) -> list[str]:
    """The route with each converter replaced by each of its hostile values."""
    urls = ["/" + route]
    for match in re.finditer(r"<(?:(\w+):)?(\w+)>", route):
        kind = match.group(1) or "str"
        urls = [u.replace(match.group(0), v, 1) for u in urls for v in PATH_VALUES.get(kind, PATH_VALUES["str"])]
    return urls


@pytest.fixture
def clients(django_user_model):
    anonymous, member, staff = Client(raise_request_exception=False), Client(raise_request_exception=False), \
        Client(raise_request_exception=False)
    member.force_login(django_user_model.objects.create_user("member", password="pw-member-123"))
    staff.force_login(django_user_model.objects.create_superuser("boss", password="pw-boss-123"))
    return {"anonymous": anonymous, "member": member, "staff": staff}


def attempts(url: str, who: str, plain_route: bool):
    """(method, url, data) to try. Staff: every hostile value in every parameter at once, GET and
    POST; and, on routes without ids, each common parameter alone with each value (so a view that
    refuses one bad parameter cannot hide what another would do). Others: a plain GET and one
    hostile one (access rules answer them first)."""
    yield "GET", url, None
    if who == "anonymous":
        return
    admin = url.startswith("/admin/")  # Django's own views: their ids and forms, not every parameter
    for value in (HOSTILE if plain_route and not admin else HOSTILE[:3]) if who == "staff" else HOSTILE[:1]:
        yield "GET", url, {p: value for p in PARAMS}
    if who != "staff":
        return
    for value in (HUGE, "2026-02-30"):
        yield "POST", url, {p: value for p in PARAMS}
    if plain_route and not admin:
        for param in COMMON:
            for value in PARSED:
                yield "GET", url, {param: value}


def sections() -> list[str]:
    """The site by first path segment (bugs/, training/, admin/, …): one test each, so parallel
    workers share the walk."""
    return sorted({route.split("/", 1)[0] for route in routes()})


def planned(section: str) -> list[tuple[str, str, str]]:
    """(route, url, who) for every URL of one section and every kind of user."""
    return [(route, url, who) for route in routes() if route.split("/", 1)[0] == section
            for url in fill(route) for who in ("anonymous", "member", "staff")]


def tries(route: str, url: str, who: str):
    return [("GET", url, None)] if route in PROBES else attempts(url, who, plain_route="<" not in route)


def test_the_walk_covers_the_site():
    """The sections together hold every route and more than 2,000 requests."""
    assert sum(len(list(tries(*p))) for s in sections() for p in planned(s)) > 2000
    assert {"bugs", "training", "admin", "teachers"} <= set(sections())


@pytest.mark.parametrize("section", sections())
def test_no_url_answers_5xx_to_hostile_input(clients, section):
    failures, requests = [], 0
    for route, url, who in planned(section):
        client = clients[who]
        for method, target, data in tries(route, url, who):
            response = client.get(target, data) if method == "GET" else client.post(target, data)
            requests += 1
            if response.status_code >= 500:
                failures.append(f"{who} {method} {target} {str(data)[:60] if data else ''} -> {response.status_code}")
    assert not failures, f"{len(failures)} of {requests} requests answered 5xx:\n" + "\n".join(failures[:80])
    assert requests > 0


def test_forms_that_take_ids_refuse_impossible_ones(clients):
    """Otherwise valid staff forms with a 30-digit id among their ids: a 4xx or a message, no 500."""
    from episodes.models import LLMEndpoint, Teacher

    endpoint = LLMEndpoint.objects.create(name="e", protocol="openai_chat", base_url="http://127.0.0.1:9", model="m")
    teacher = Teacher.objects.create(name="t", endpoint=endpoint)
    staff = clients["staff"]
    posts = [
        ("/bugs/bulk/apply/", {"verdict": "approve", "ids": f"1,{HUGE}", "notes": "ok"}),
        ("/bugs/bulk/apply/", {"verdict": "reject", "ids": HUGE, "notes": "no"}),
        ("/teachers/solve/", {"teacher": teacher.pk, "k": 1, "scope": "ids", "ids": f"{HUGE} 2"}),
        ("/teachers/solve/", {"teacher": HUGE, "k": HUGE, "scope": "repository", "repository": HUGE}),
    ]
    answers = [(url, staff.post(url, data).status_code) for url, data in posts]
    assert all(status < 500 for _, status in answers), answers
    gets = ["/training/compare/?runs=1," + HUGE, f"/episodes/?bug={HUGE}&page={HUGE}", f"/bugs/?page={HUGE}"]
    answers = [(url, staff.get(url).status_code) for url in gets]
    assert all(status < 500 for _, status in answers), answers
