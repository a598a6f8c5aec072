"""canonical_from_calls on what the recording gateway really stores: a two-turn tool-use
exchange, streamed, in each protocol, through the gateway (uvicorn in a thread) to the scripted
upstream; the LLMCall rows hold the reassembled responses."""
import json
import time

import httpx2 as httpx
import pytest

from episodes.engine.trajectories.canonical import canonical_from_calls, check_canonical
from tests.llm.fake_upstream import FakeUpstream, Reply

ROUTES = {"openai_chat": "/v1/chat/completions", "openai_responses": "/v1/responses", "anthropic": "/v1/messages?beta=true"}
ARGS = {"path": "shipping.py", "old": "total > FREE_FROM", "new": "total >= FREE_FROM"}
SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}, "old": {"type": "string"}, "new": {"type": "string"}}}


def turns(protocol):
    """(first request, second request) bodies: the agent's side of the exchange."""
    if protocol == "anthropic":
        tools = [{"name": "edit", "description": "Replace text", "input_schema": SCHEMA}]
        first = [{"role": "user", "content": "Fix shipping.py"}]
        second = first + [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "call_edit", "name": "edit", "input": ARGS}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_edit", "content": "edited"}]}]
        make = lambda msgs: {"model": "m", "max_tokens": 512, "system": "You fix bugs.", "tools": tools, "messages": msgs, "stream": True}
    elif protocol == "openai_chat":
        tools = [{"type": "function", "function": {"name": "edit", "description": "Replace text", "parameters": SCHEMA}}]
        first = [{"role": "system", "content": "You fix bugs."}, {"role": "user", "content": "Fix shipping.py"}]
        second = first + [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_edit", "type": "function", "function": {"name": "edit", "arguments": json.dumps(ARGS)}}]},
            {"role": "tool", "tool_call_id": "call_edit", "content": "edited"}]
        make = lambda msgs: {"model": "m", "tools": tools, "messages": msgs, "stream": True, "stream_options": {"include_usage": True}}
    else:
        tools = [{"type": "function", "name": "edit", "description": "Replace text", "parameters": SCHEMA}]
        first = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Fix shipping.py"}]}]
        second = first + [
            {"type": "function_call", "call_id": "call_edit", "name": "edit", "arguments": json.dumps(ARGS)},
            {"type": "function_call_output", "call_id": "call_edit", "output": "edited"}]
        make = lambda items: {"model": "m", "instructions": "You fix bugs.", "tools": tools, "input": items, "stream": True}
    return make(first), make(second)


@pytest.mark.parametrize("protocol", ["openai_chat", "openai_responses", "anthropic"])
def test_streamed_calls_recorded_by_the_gateway_convert(protocol, transactional_db):
    from episodes.solving.gateway.server import serve_in_background
    from episodes.models import Bug, Episode, LLMCall, LLMEndpoint, Repository, Teacher

    with FakeUpstream() as upstream:
        upstream.script(Reply(text="Editing.", tool_calls=[{"id": "call_edit", "name": "edit", "arguments": ARGS}]),
                        Reply(text="Fixed: 50 EUR now ships free."))
        repo = Repository.objects.create(name="shop", source="/nowhere", pinned_commit="a" * 40)
        bug = Bug.objects.create(repository=repo, base_commit="a" * 40, patch="p", verifier="v")
        endpoint = LLMEndpoint.objects.create(name="up", protocol=protocol, base_url=upstream.url, model="m", api_key="sk-x")
        episode = Episode.objects.create(bug=bug, teacher=Teacher.objects.create(name="t", endpoint=endpoint), status="running")
        token = episode.issue_gateway_token()
        with serve_in_background() as base:
            for body in turns(protocol):
                with httpx.stream("POST", base + ROUTES[protocol], json=body, timeout=30, headers={
                        "authorization": f"Bearer {token}", "anthropic-version": "2023-06-01"}) as response:
                    assert response.status_code == 200
                    assert b"".join(response.iter_bytes())  # consume the stream
        deadline = time.monotonic() + 15
        while LLMCall.objects.filter(episode=episode).count() < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        rows = list(LLMCall.objects.filter(episode=episode).order_by("sequence"))
    assert len(rows) == 2 and all(r.streamed for r in rows)
    traj = canonical_from_calls([{"protocol": r.protocol, "path": r.path, "request": r.request, "response": r.response,
                                  "status_code": r.status_code, "error": r.error} for r in rows])
    assert check_canonical(traj) == []
    m = traj["messages"]
    assert [x["role"] for x in m] == ["system", "user", "assistant", "tool", "assistant"]
    assert m[0]["content"] == "You fix bugs."
    assert m[2]["tool_calls"] == [{"id": "call_edit", "type": "function", "function": {"name": "edit", "arguments": ARGS}}]
    assert m[3] == {"role": "tool", "tool_call_id": "call_edit", "content": "edited"}
    assert m[4] == {"role": "assistant", "content": "Fixed: 50 EUR now ships free."}  # reassembled from the stream
    assert traj["tools"] == [{"type": "function", "function": {"name": "edit", "description": "Replace text", "parameters": SCHEMA}}]
