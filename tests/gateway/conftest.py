"""Gateway tests: a real uvicorn server in a thread, the scripted upstream, the real database
(``transactional_db``: the gateway's own threads must see the rows the test commits)."""
import time

import httpx2 as httpx
import pytest

from tests.llm.fake_upstream import FakeUpstream

KEY = "sk-real-UPSTREAM-key-5e1f0c9a77"


@pytest.fixture
def upstream():
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def make_episode(transactional_db, upstream):
    """``make_episode(protocol, **endpoint_fields) -> (episode, token)``: a live episode whose
    teacher's endpoint is the scripted upstream."""
    from episodes.models import Bug, Episode, LLMEndpoint, Repository, Teacher

    repo = Repository.objects.create(name="gw-repo", source="/nowhere", pinned_commit="a" * 40)
    bug = Bug.objects.create(repository=repo, base_commit="a" * 40, patch="p", verifier="v")
    made = []

    def make(protocol="anthropic", status="running", **endpoint_kw):
        n = len(made) + 1
        fields = dict(name=f"ep-{n}", protocol=protocol, base_url=upstream.url, model="upstream-model",
                      api_key=KEY, usd_per_mtok_in=3, usd_per_mtok_out=15)
        fields.update(endpoint_kw)
        endpoint = LLMEndpoint.objects.create(**fields)
        teacher = Teacher.objects.create(name=f"t-{n}", endpoint=endpoint)
        episode = Episode.objects.create(bug=bug, teacher=teacher, status=status)
        made.append(episode)
        return episode, episode.issue_gateway_token()

    return make


@pytest.fixture
def gateway(make_episode):
    from episodes.gateway.server import serve_in_background

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
