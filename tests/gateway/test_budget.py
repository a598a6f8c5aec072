"""Limits enforced at the gateway, where every harness must pass: a call past the episode's
step, token or cost budget is refused in the protocol's own error shape and never reaches the
upstream; an upstream that keeps failing is given up on after a few calls, not retried for
minutes. (The harness cannot lift these: it never sees the budget, only the refusal.)"""
from decimal import Decimal

import pytest

from episodes.models import Episode
from tests.llm.fake_upstream import Reply

from .test_gateway import CALL, ROUTE, post, request_body, wait_for_calls


def call(gateway, protocol, token, tools=True):
    header = "x-api-key" if protocol == "anthropic" else "bearer"
    return post(gateway, ROUTE[protocol], request_body(protocol, tools=tools), token, header)


def error_message(protocol, answer) -> str:
    body = answer.json()
    assert (body["type"] == "error") if protocol == "anthropic" else ("error" in body)
    assert body["error"]["type"] == "invalid_request_error"
    return body["error"]["message"]


@pytest.mark.parametrize("protocol", ["anthropic", "openai_chat", "openai_responses"])
def test_the_step_past_the_limit_is_refused_and_not_forwarded(gateway, make_episode, upstream, protocol):
    episode, token = make_episode(protocol, config={"max_steps": 2})
    upstream.script(*[Reply("working", tool_calls=[CALL], tokens_in=10, tokens_out=5)] * 5)
    answers = [call(gateway, protocol, token) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 400, 400]
    assert len(upstream.requests) == 2  # the refused ones never left the gateway
    assert "step limit reached: 2 of 2" in error_message(protocol, answers[2])
    rows = wait_for_calls(episode, 4)
    assert [r.refused for r in rows] == ["", "", "step_limit", "step_limit"]
    assert rows[2].request["messages" if protocol != "openai_responses" else "input"]  # what the agent wanted, kept
    episode.refresh_from_db()
    assert (episode.steps, episode.tokens_in, episode.tokens_out) == (2, 20, 10)


def test_side_calls_without_tools_cost_tokens_but_are_not_steps(gateway, make_episode, upstream):
    """Claude Code's titles and summaries offer no tools: they are not agent steps."""
    episode, token = make_episode("anthropic", config={"max_steps": 1})
    upstream.script(*[Reply("a title", tokens_in=30, tokens_out=10)] * 2, Reply("step", tool_calls=[CALL]))
    assert [call(gateway, "anthropic", token, tools=False).status_code for _ in range(2)] == [200, 200]
    assert call(gateway, "anthropic", token).status_code == 200  # the one step
    assert call(gateway, "anthropic", token).status_code == 400
    rows = wait_for_calls(episode, 4)
    assert [r.refused for r in rows] == ["", "", "", "step_limit"]
    episode.refresh_from_db()
    assert (episode.steps, episode.tokens_in) == (1, 30 + 30 + 120)  # a default Reply uses 120


def test_tokens_and_cost_limits_hold_for_any_request(gateway, make_episode, upstream):
    """An agent that calls the gateway itself (the token is in a CLI's environment) with
    requests offering no tools takes no steps, but the token and cost budgets still hold."""
    t_episode, t_token = make_episode("openai_chat", config={"max_tokens": 2500})
    c_episode, c_token = make_episode("openai_chat", config={"max_cost_usd": 0.01})
    upstream.script(*[Reply("x", tokens_in=1000, tokens_out=400)] * 6)
    t = [call(gateway, "openai_chat", t_token, tools=False).status_code for _ in range(3)]
    c = [call(gateway, "openai_chat", c_token, tools=False).status_code for _ in range(3)]
    assert t == [200, 200, 400]  # 1400, 2800 ≥ 2500: refused
    assert c == [200, 200, 400]  # $0.009 each (1000 × $3/M + 400 × $15/M): $0.018 ≥ $0.01
    assert wait_for_calls(t_episode, 3)[-1].refused == "token_limit"
    assert wait_for_calls(c_episode, 3)[-1].refused == "cost_limit"
    c_episode.refresh_from_db()
    assert c_episode.cost_usd == Decimal("0.018000")


def test_recorded_totals_count_from_the_first_call(gateway, make_episode, upstream):
    """A restarted gateway (or a second gateway process) starts from the episode's row."""
    episode, token = make_episode("anthropic", config={"max_steps": 3})
    Episode.objects.filter(pk=episode.pk).update(steps=3)
    answer = call(gateway, "anthropic", token)
    assert answer.status_code == 400 and upstream.requests == []
    assert wait_for_calls(episode, 1)[0].refused == "step_limit"


@pytest.mark.parametrize("failure", [Reply.error(500), Reply.error(529, "Overloaded"), Reply.garbage()])
def test_an_upstream_that_keeps_failing_is_given_up_on(gateway, make_episode, upstream, failure):
    episode, token = make_episode("anthropic")
    upstream.script(*[failure] * 10)
    answers = [call(gateway, "anthropic", token).status_code for _ in range(5)]
    assert answers[3:] == [400, 400] and len(upstream.requests) == 3
    rows = wait_for_calls(episode, 5)
    assert [r.refused for r in rows] == ["", "", "", "upstream_down", "upstream_down"]
    assert "failed 3 times in a row (first: HTTP" in rows[3].error


def test_one_success_resets_the_failure_count(gateway, make_episode, upstream):
    episode, token = make_episode("anthropic")
    upstream.script(Reply.error(500), Reply.error(500), "fine", Reply.error(500), Reply.error(500), "fine again")
    assert [call(gateway, "anthropic", token).status_code for _ in range(6)] == [500, 500, 200, 500, 500, 200]
    assert not any(r.refused for r in wait_for_calls(episode, 6))


def test_unreachable_upstream_is_given_up_on_too(gateway, make_episode):
    episode, token = make_episode("openai_chat", base_url="http://127.0.0.1:9")  # nothing listens
    answers = [call(gateway, "openai_chat", token).status_code for _ in range(4)]
    assert answers == [502, 502, 502, 400]
    assert wait_for_calls(episode, 4)[-1].refused == "upstream_down"


def test_concurrent_calls_cannot_slip_past_the_step_limit(gateway, make_episode, upstream):
    """The attack: an agent holding its token (a CLI's environment has it) fires many calls at
    once, before any has finished and been counted. Calls offering tools reserve a step when
    admitted, so no more than the limit are ever forwarded; past the in-flight cap the rest are
    told to retry (429), which neither ends the episode nor counts as an upstream failure. The
    upstream holds every answer until the refusals are all in, so nothing depends on timing."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from episodes.solving.gateway.budget import MAX_IN_FLIGHT

    def burst(token, n, refused, tools):
        release = threading.Event()
        upstream.fallback = lambda recorded: (release.wait(20), Reply("held", tool_calls=[CALL] if tools else []))[1]
        with ThreadPoolExecutor(n) as pool:
            futures = [pool.submit(lambda: call(gateway, "openai_chat", token, tools=tools).status_code) for _ in range(n)]
            deadline = time.monotonic() + 20
            while sum(f.done() for f in futures) < refused and time.monotonic() < deadline:
                time.sleep(0.02)  # the refusals come back at once; the admitted calls are held
            release.set()
            return [f.result() for f in futures]

    episode, token = make_episode("openai_chat", config={"max_steps": 2})
    statuses = burst(token, 12, refused=10, tools=True)
    assert sorted(statuses) == [200, 200] + [400] * 10 and len(upstream.requests) == 2
    wait_for_calls(episode, 12)  # recorded just after each answer
    episode.refresh_from_db()
    assert episode.steps == 2

    # calls without tools take no step, but only MAX_IN_FLIGHT of them run at once
    other, other_token = make_episode("openai_chat", config={"max_tokens": 10**9})
    statuses = burst(other_token, MAX_IN_FLIGHT + 4, refused=4, tools=False)
    assert statuses.count(200) == MAX_IN_FLIGHT and statuses.count(429) == 4
    rows = wait_for_calls(other, MAX_IN_FLIGHT + 4)
    assert not any(r.refused for r in rows)  # busy is not a verdict on the episode
