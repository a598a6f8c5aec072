"""The recording gateway end to end: a client → uvicorn (the gateway, in a thread) → the scripted
upstream, with every call checked in PostgreSQL."""
import json
import threading
from decimal import Decimal

import httpx2 as httpx
import pytest

from episodes.models import Episode, LLMCall
from tests.llm.fake_upstream import Reply

from .conftest import KEY, post, wait_for_calls

ROUTE = {"openai_chat": "/v1/chat/completions", "openai_responses": "/v1/responses", "anthropic": "/v1/messages"}
CALL = {"id": "call_7", "name": "edit", "arguments": {"path": "cartcalc/tax.py", "old": "a < b", "new": "a <= b"}}


TOOL_OFFERED = {  # an agent's request offers tools: its completed calls are steps
    "anthropic": {"name": "edit", "description": "edit a file", "input_schema": {"type": "object"}},
    "openai_chat": {"type": "function", "function": {"name": "edit", "parameters": {"type": "object"}}},
    "openai_responses": {"type": "function", "name": "edit", "parameters": {"type": "object"}},
}


def request_body(protocol, stream=False, tools=True):
    body = {"model": "agent-chosen-model", "max_tokens": 256}
    if tools:
        body["tools"] = [TOOL_OFFERED[protocol]]
    if protocol == "openai_responses":
        body["input"] = [{"role": "user", "content": "fix the bug"}]
    else:
        body["messages"] = [{"role": "user", "content": "fix the bug"}]
    if stream:
        body["stream"] = True
        if protocol == "openai_chat":
            body["stream_options"] = {"include_usage": True}
    return body


def reassembled(protocol, response):
    """(text, [(call id, name, arguments dict)]) from a stored response, whatever its protocol."""
    if protocol == "openai_chat":
        message = response["choices"][0]["message"]
        calls = [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                 for c in message.get("tool_calls") or []]
        return message["content"], calls
    if protocol == "anthropic":
        text = "".join(b["text"] for b in response["content"] if b["type"] == "text")
        return text, [(b["id"], b["name"], b["input"]) for b in response["content"] if b["type"] == "tool_use"]
    text = "".join(p["text"] for o in response["output"] if o["type"] == "message" for p in o["content"])
    calls = [(o["call_id"], o["name"], json.loads(o["arguments"])) for o in response["output"]
             if o["type"] == "function_call"]
    return text, calls


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("protocol", ["openai_chat", "openai_responses", "anthropic"])
def test_round_trip_is_faithful_and_recorded(gateway, make_episode, upstream, protocol, stream):
    episode, token = make_episode(protocol)
    upstream.script(Reply("I will edit the file now", tool_calls=[CALL], tokens_in=1000, tokens_out=2000))
    header = "x-api-key" if protocol == "anthropic" else "bearer"
    answer = post(gateway, ROUTE[protocol], request_body(protocol, stream), token, header)

    [sent] = upstream.requests
    assert answer.status_code == 200
    assert answer.content == sent.sent  # byte for byte what the upstream wrote
    if stream:
        assert answer.headers["content-type"].startswith("text/event-stream")
    [row] = wait_for_calls(episode, 1)
    assert (row.protocol, row.path, row.streamed, row.sequence, row.status_code, row.error) == (
        protocol, ROUTE[protocol], stream, 1, 200, "")
    assert row.endpoint_id == episode.teacher.endpoint_id
    # The endpoint's model replaces the agent's; the rest of the body goes as sent.
    assert sent.body["model"] == "upstream-model" and row.request == sent.body
    assert reassembled(protocol, row.response) == ("I will edit the file now", [("call_7", "edit", CALL["arguments"])])
    assert (row.tokens_in, row.tokens_out) == (1000, 2000)
    assert row.cost_usd == Decimal("0.033000")  # 1000 × $3/M + 2000 × $15/M
    assert 0 < row.ttfb_ms <= row.latency_ms
    assert row.raw_stream == (sent.sent.decode() if stream else "")
    episode.refresh_from_db()
    assert (episode.tokens_in, episode.tokens_out, episode.cost_usd, episode.steps) == (
        1000, 2000, Decimal("0.033000"), 1)


@pytest.mark.parametrize("protocol", ["openai_chat", "openai_responses", "anthropic"])
def test_streams_are_not_buffered(gateway, make_episode, upstream, protocol):
    """The upstream holds its stream after the first event until the test has read that event
    through the gateway: a buffering gateway would never deliver it (and the gate would time out)."""
    episode, token = make_episode(protocol)
    gate = threading.Event()
    upstream.script(Reply("one two three four", gate=gate))
    with httpx.stream("POST", gateway + ROUTE[protocol], json=request_body(protocol, stream=True),
                      headers={"authorization": f"Bearer {token}"}, timeout=30) as answer:
        chunks = answer.iter_raw()
        first = next(chunks)
        upstream_finished_before_first_chunk = upstream.requests[0].done.is_set()
        gate.set()
        rest = b"".join(chunks)
    assert not upstream_finished_before_first_chunk
    assert upstream.requests[0].gate_released is True
    assert first + rest == upstream.requests[0].sent
    [row] = wait_for_calls(episode, 1)
    assert row.error == "" and row.ttfb_ms < row.latency_ms


def test_chunks_arrive_while_a_slow_stream_is_still_running(gateway, make_episode, upstream):
    episode, token = make_episode("anthropic")
    upstream.script(Reply("a b c d e f", chunk_delay_s=0.05))
    seen_while_running = []
    with httpx.stream("POST", gateway + "/v1/messages", json=request_body("anthropic", stream=True),
                      headers={"x-api-key": token}, timeout=30) as answer:
        for _ in answer.iter_raw():
            seen_while_running.append(upstream.requests[0].chunks_sent)
    total = upstream.requests[0].chunks_sent
    assert seen_while_running[0] < total  # the first chunk came before the last one was sent
    assert len(seen_while_running) > 3
    wait_for_calls(episode, 1)


@pytest.mark.parametrize("protocol", ["openai_chat", "anthropic"])
def test_upstream_errors_are_passed_back_and_recorded(gateway, make_episode, upstream, protocol):
    episode, token = make_episode(protocol)
    upstream.script(Reply.error(500, "upstream exploded"), Reply.garbage(b"<html>502 Bad Gateway</html>"),
                    Reply.error(429, "slow down", headers={"retry-after": "7"}))
    first = post(gateway, ROUTE[protocol], request_body(protocol), token)
    second = post(gateway, ROUTE[protocol], request_body(protocol, stream=True), token)
    third = post(gateway, ROUTE[protocol], request_body(protocol), token)
    assert (first.status_code, first.content) == (500, upstream.requests[0].sent)
    assert (second.status_code, second.content) == (200, b"<html>502 Bad Gateway</html>")
    assert (third.status_code, third.headers["retry-after"], third.content) == (429, "7", upstream.requests[2].sent)
    rows = wait_for_calls(episode, 3)
    assert [r.status_code for r in rows] == [500, 200, 429]
    assert rows[0].error == "HTTP 500: upstream exploded" and rows[0].response == json.loads(first.content)
    assert rows[1].error == "HTTP 200: response body is not JSON"
    assert rows[1].response == {"raw": "<html>502 Bad Gateway</html>"}
    assert rows[2].error == "HTTP 429: slow down"
    episode.refresh_from_db()
    assert episode.steps == 0 and episode.tokens_in == 0


@pytest.mark.parametrize("protocol", ["openai_responses", "anthropic"])
def test_unreachable_and_slow_upstreams(make_episode, upstream, settings, protocol):
    from episodes.solving.gateway.server import serve_in_background

    settings.BUGFORGE_GATEWAY_TIMEOUT_S = 0.5
    probe = __import__("socket").socket()
    probe.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    refused_episode, refused_token = make_episode(protocol, base_url=dead)
    slow_episode, slow_token = make_episode(protocol)
    upstream.script(Reply("too late", delay_s=2))
    with serve_in_background() as gateway:
        refused = post(gateway, ROUTE[protocol], request_body(protocol), refused_token)
        slow = post(gateway, ROUTE[protocol], request_body(protocol), slow_token)
    assert refused.status_code == 502 and "could not reach the upstream" in json.dumps(refused.json())
    assert slow.status_code == 504 and "timed out" in json.dumps(slow.json())
    shape = "type" if protocol == "anthropic" else "error"
    assert shape in refused.json() and shape in slow.json()  # the protocol's error shape
    [refused_row] = wait_for_calls(refused_episode, 1)
    [slow_row] = wait_for_calls(slow_episode, 1)
    assert refused_row.status_code == 502 and refused_row.error.startswith("could not reach the upstream")
    assert slow_row.status_code == 504 and slow_row.error.startswith("upstream timed out")


def test_upstream_dying_mid_stream_cuts_the_client_and_is_recorded(gateway, make_episode, upstream):
    episode, token = make_episode("anthropic")
    upstream.script(Reply("a b c d e f g", cut_after=4))
    received = b""
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("POST", gateway + "/v1/messages", json=request_body("anthropic", stream=True),
                          headers={"x-api-key": token}, timeout=30) as answer:
            for chunk in answer.iter_raw():
                received += chunk
    assert received == upstream.requests[0].sent  # what had come, then a cut connection
    [row] = wait_for_calls(episode, 1)
    assert row.error.startswith("upstream stream broken") and row.raw_stream == received.decode()
    assert row.response["content"][0]["text"] == "a "  # reassembled as far as it went (4 events)


def test_client_disconnect_is_recorded_and_closes_the_upstream_request(gateway, make_episode, upstream):
    episode, token = make_episode("openai_chat")
    upstream.script(Reply(" ".join(["word"] * 60), chunk_delay_s=0.05))
    with httpx.stream("POST", gateway + "/v1/chat/completions", json=request_body("openai_chat", stream=True),
                      headers={"authorization": f"Bearer {token}"}, timeout=30) as answer:
        next(answer.iter_raw())
    # The client hung up after the first chunk.
    [row] = wait_for_calls(episode, 1)
    assert row.error == "client disconnected" and row.streamed and row.raw_stream
    assert upstream.requests[0].done.wait(15)
    assert upstream.requests[0].client_gone  # the gateway closed its upstream request too
    assert upstream.requests[0].chunks_sent < 60


@pytest.mark.parametrize("protocol", ["openai_chat", "anthropic"])
def test_unknown_and_expired_tokens_get_401_and_nothing_is_forwarded(gateway, make_episode, upstream, protocol):
    episode, token = make_episode(protocol)
    finished, finished_token = make_episode(protocol, status="solved")
    for bad in [None, "bfgw_not-a-real-token", finished_token, KEY]:
        answer = post(gateway, ROUTE[protocol], request_body(protocol), bad)
        assert answer.status_code == 401
        if protocol == "anthropic":
            assert answer.json()["error"]["type"] == "authentication_error"
        else:
            assert answer.json()["error"]["code"] == "invalid_api_key"
    assert upstream.requests == [] and not LLMCall.objects.filter(episode__in=[episode, finished]).exists()


def test_the_real_key_reaches_the_upstream_but_never_the_records_or_logs(gateway, make_episode, upstream, caplog):
    caplog.set_level("DEBUG")
    episode, token = make_episode("anthropic")
    chat_episode, chat_token = make_episode("openai_chat")
    # The agent leaks its token into the conversation (say, a tool printed its environment) and
    # the upstream echoes the key back: neither may be stored.
    upstream.script(Reply(f"your key is {KEY}"), Reply(f"key {KEY}", tool_calls=[CALL]))
    body = request_body("anthropic", stream=True)
    body["messages"][0]["content"] = f"env: ANTHROPIC_API_KEY={token}"
    assert post(gateway, "/v1/messages", body, token, "x-api-key").status_code == 200
    chat_body = request_body("openai_chat")
    chat_body["messages"][0]["content"] = f"token {chat_token}"
    assert post(gateway, "/v1/chat/completions", chat_body, chat_token).status_code == 200

    anthropic_sent, chat_sent = upstream.requests
    assert anthropic_sent.headers["x-api-key"] == KEY and "authorization" not in anthropic_sent.headers
    assert chat_sent.headers["authorization"] == f"Bearer {KEY}" and "x-api-key" not in chat_sent.headers
    for sent, tok in [(anthropic_sent, token), (chat_sent, chat_token)]:
        assert tok not in json.dumps(sent.headers)  # the token never goes upstream as a credential
    rows = wait_for_calls(episode, 1) + wait_for_calls(chat_episode, 1)
    for row in rows:
        stored = json.dumps([row.request, row.response, row.raw_stream, row.error, row.path])
        assert KEY not in stored and token not in stored and chat_token not in stored
        assert "[redacted]" in stored
    assert KEY not in caplog.text and token not in caplog.text and chat_token not in caplog.text


def test_token_in_the_path_and_query_strings(gateway, make_episode, upstream):
    episode, token = make_episode("anthropic")
    upstream.script("hello")
    answer = httpx.post(f"{gateway}/t/{token}/v1/messages?beta=true", json=request_body("anthropic"), timeout=30)
    assert answer.status_code == 200 and answer.json()["content"][0]["text"] == "hello"
    assert upstream.requests[0].path == "/v1/messages?beta=true"
    assert "x-api-key" in upstream.requests[0].headers  # the real key, not the path token
    [row] = wait_for_calls(episode, 1)
    assert row.path == "/v1/messages?beta=true" and token not in row.path


def test_count_tokens_is_forwarded_but_is_not_a_step(gateway, make_episode, upstream):
    episode, token = make_episode("anthropic")
    answer = post(gateway, "/v1/messages/count_tokens?beta=true", request_body("anthropic"), token, "x-api-key")
    assert answer.status_code == 200 and answer.content == upstream.requests[0].sent
    assert answer.json()["input_tokens"] > 0
    [row] = wait_for_calls(episode, 1)
    assert row.path == "/v1/messages/count_tokens?beta=true" and (row.tokens_in, row.tokens_out) == (0, 0)
    episode.refresh_from_db()
    assert episode.steps == 0


def test_protocol_mismatch_is_a_clear_400(gateway, make_episode, upstream):
    _, anthropic_token = make_episode("anthropic")
    _, responses_token = make_episode("openai_responses")
    wrong = post(gateway, "/v1/chat/completions", request_body("openai_chat"), anthropic_token)
    assert wrong.status_code == 400
    assert "speaks Anthropic Messages" in wrong.json()["error"]["message"]
    assert "/v1/messages" in wrong.json()["error"]["message"]
    wrong = post(gateway, "/v1/messages", request_body("anthropic"), responses_token, "x-api-key")
    assert wrong.status_code == 400 and wrong.json()["type"] == "error"  # asked in Anthropic's shape
    assert "speaks OpenAI Responses" in wrong.json()["error"]["message"]
    assert upstream.requests == []
    assert post(gateway, "/v1/embeddings", {}, anthropic_token).status_code == 404
    assert httpx.get(gateway + "/v1/messages", timeout=5).status_code == 405
    assert httpx.get(gateway + "/healthz", timeout=5).json() == {"status": "ok"}


def test_concurrent_calls_of_one_episode_get_distinct_sequence_numbers(gateway, make_episode, upstream):
    episode, token = make_episode("openai_chat")
    upstream.fallback = Reply("ok", tokens_in=10, tokens_out=1)
    threads = [threading.Thread(target=post, args=(gateway, "/v1/chat/completions", request_body("openai_chat"),
                                                   token)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = wait_for_calls(episode, 8)
    assert sorted(r.sequence for r in rows) == list(range(1, 9))
    episode.refresh_from_db()
    assert (episode.steps, episode.tokens_in, episode.tokens_out) == (8, 80, 8)


def test_official_sdks_work_through_the_gateway(gateway, make_episode, upstream):
    import anthropic
    import openai

    a_episode, a_token = make_episode("anthropic")
    o_episode, o_token = make_episode("openai_responses")
    upstream.script(Reply("reading", tool_calls=[CALL]), Reply("done", tool_calls=[CALL]))
    with anthropic.Anthropic(base_url=gateway, api_key=a_token, max_retries=0).messages.stream(
            model="x", max_tokens=10, messages=[{"role": "user", "content": "hi"}]) as s:
        message = s.get_final_message()
    assert message.content[1].input == CALL["arguments"]
    with openai.OpenAI(base_url=gateway + "/v1", api_key=o_token, max_retries=0).responses.stream(
            model="x", input="hi", tools=[TOOL_OFFERED["openai_responses"]]) as s:
        response = s.get_final_response()
    assert response.output_text == "done"
    [a_row] = wait_for_calls(a_episode, 1)
    [o_row] = wait_for_calls(o_episode, 1)
    assert a_row.response["content"][1]["input"] == CALL["arguments"] and a_row.streamed
    assert o_row.response["status"] == "completed" and o_row.tokens_in == 120
    assert Episode.objects.get(pk=o_episode.pk).steps == 1


def test_ending_an_episode_revokes_its_token(make_episode, upstream, settings):
    from episodes.solving.gateway.server import serve_in_background

    settings.BUGFORGE_GATEWAY_TOKEN_CACHE_S = 0  # the default remembers a live token for 2 s
    episode, token = make_episode("anthropic")
    upstream.script("first")
    with serve_in_background() as gateway:
        assert post(gateway, "/v1/messages", request_body("anthropic"), token, "x-api-key").status_code == 200
        Episode.objects.filter(pk=episode.pk).update(status="solved")
        assert post(gateway, "/v1/messages", request_body("anthropic"), token, "x-api-key").status_code == 401
    assert len(upstream.requests) == 1


def test_client_giving_up_before_the_upstream_answers_is_recorded(gateway, make_episode, upstream):
    episode, token = make_episode("anthropic")
    upstream.script(Reply("too late for the client", delay_s=1.5))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway + "/v1/messages", json=request_body("anthropic"), headers={"x-api-key": token},
                   timeout=httpx.Timeout(5, read=0.3))
    [row] = wait_for_calls(episode, 1)
    assert row.error == "client disconnected" and row.status_code is None
    assert upstream.requests[0].done.wait(15)
    assert upstream.requests[0].client_gone  # the gateway dropped its upstream request too


def test_long_raw_streams_are_capped_but_the_answer_is_whole(make_episode, upstream, settings):
    from episodes.solving.gateway.server import serve_in_background

    settings.BUGFORGE_GATEWAY_RAW_STREAM_MAX_BYTES = 300
    episode, token = make_episode("anthropic")
    words = " ".join(f"w{i}" for i in range(100))
    upstream.script(Reply(words))
    with serve_in_background() as gateway:
        answer = post(gateway, "/v1/messages", request_body("anthropic", stream=True), token, "x-api-key")
    [row] = wait_for_calls(episode, 1)
    sent = upstream.requests[0].sent
    assert answer.content == sent and len(sent) > 300
    assert row.raw_stream.startswith(sent[:300].decode())
    assert f"kept the first 300 of {len(sent)} bytes" in row.raw_stream
    assert row.response["content"][0]["text"] == words and row.error == ""
