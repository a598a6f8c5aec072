"""Gateway tests: a real uvicorn server in a thread, the scripted upstream, the real database
(with committed rows: the gateway's own threads must see what a test makes)."""
import time
import uuid

import httpx2 as httpx
import pytest

from tests.llm.fake_upstream import FakeUpstream

KEY = "sk-real-UPSTREAM-key-5e1f0c9a77"


@pytest.fixture
def upstream():
    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def module_db(request, django_db_setup, django_db_blocker):
    """Database access, committed at once, for a whole module: the gateway's own threads must
    see the rows a test makes. ``transactional_db`` would do, but empties every table after each
    test (about a second each); ``make_episode`` deletes what each test made instead."""
    from django.test.utils import setup_databases, teardown_databases

    # pytest-django creates the test database only when a collected test asks for one (the `db`
    # fixtures or mark), which this fixture is not: run alone, these tests would otherwise write
    # to the configured (developer's) database.
    asked = {"db", "transactional_db", "live_server"}
    created = not any(asked & set(item.fixturenames) or item.get_closest_marker("django_db")
                      for item in request.session.items)
    with django_db_blocker.unblock():
        databases = setup_databases(verbosity=0, interactive=False, aliases={"default"}) if created else None
        yield
        if created:
            teardown_databases(databases, verbosity=0)


@pytest.fixture
def make_episode(module_db, upstream):
    """``make_episode(protocol, config=teacher_config, **endpoint_fields) -> (episode, token)``:
    a live episode whose teacher's endpoint is the scripted upstream. Its rows (and calls) are deleted afterwards."""
    from episodes.models import Bug, Episode, LLMEndpoint, Repository, Teacher

    tag = uuid.uuid4().hex[:10]
    repo = Repository.objects.create(name=f"gw-{tag}", source="/nowhere", pinned_commit="a" * 40)
    bug = Bug.objects.create(repository=repo, base_commit="a" * 40, patch="p", verifier="v")
    made = []

    def make(protocol="anthropic", status="running", config=None, **endpoint_kw):
        name = f"gw-{tag}-{len(made) + 1}"
        fields = dict(name=name, protocol=protocol, base_url=upstream.url, model="upstream-model",
                      api_key=KEY, usd_per_mtok_in=3, usd_per_mtok_out=15)
        fields.update(endpoint_kw)
        endpoint = LLMEndpoint.objects.create(**fields)
        teacher = Teacher.objects.create(name=name, endpoint=endpoint, config=config or {})
        episode = Episode.objects.create(bug=bug, teacher=teacher, status=status)
        made.append(episode)
        return episode, episode.issue_gateway_token()

    yield make
    Episode.objects.filter(bug=bug).delete()  # their calls go with them
    Teacher.objects.filter(name__startswith=f"gw-{tag}-").delete()
    LLMEndpoint.objects.filter(name__startswith=f"gw-{tag}-").delete()
    repo.delete()


@pytest.fixture(scope="module")
def gateway(module_db):
    """One gateway server for a module's tests (tests that change its settings start their own)."""
    from episodes.solving.gateway.server import serve_in_background

    with serve_in_background() as base:
        yield base


def wait_for_calls(episode, count: int, timeout_s: float = 15):
    """The episode's LLMCall rows once ``count`` exist: a call is recorded just after the client
    has its whole answer, so a test may look a moment too early."""
    from episodes.models import LLMCall

    deadline = time.monotonic() + timeout_s
    while True:
        rows = list(LLMCall.objects.filter(episode=episode).order_by("sequence"))
        if len(rows) >= count or time.monotonic() > deadline:
            assert len(rows) == count, f"expected {count} recorded calls, found {len(rows)}"
            return rows
        time.sleep(0.02)


def post(base, path, body, token=None, header="bearer", stream=False, **kw):
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    if token and header == "bearer":
        headers["authorization"] = f"Bearer {token}"
    elif token:
        headers["x-api-key"] = token
    return httpx.post(base + path, json=body, headers=headers, timeout=30, **kw)
