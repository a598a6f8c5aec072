"""The scripted upstream speaks the three protocols faithfully: the official SDKs (which
accumulate streams themselves) read its tool calls, streams and usage back correctly."""
import json
import threading

import httpx2 as httpx
import pytest

from tests.llm.fake_upstream import FakeUpstream, Reply

CALL = {"id": "call_1", "name": "view", "arguments": {"path": "cartcalc/shipping.py", "lines": [1, 40]}}


@pytest.fixture
def up():
    with FakeUpstream() as server:
        yield server


def openai_sdk(up):
    import openai

    return openai.OpenAI(base_url=up.url + "/v1", api_key="sk-x", max_retries=0)


def anthropic_sdk(up):
    import anthropic

    return anthropic.Anthropic(base_url=up.url, api_key="sk-x", max_retries=0)


@pytest.mark.parametrize("stream", [False, True])
def test_chat_completions_tool_calls(up, stream):
    up.script(Reply("let me look", tool_calls=[CALL], tokens_in=11, tokens_out=7))
    kw = dict(model="m", messages=[{"role": "user", "content": "hi"}])
    if not stream:
        msg = openai_sdk(up).chat.completions.create(**kw)
        choice = msg.choices[0]
        calls, text, finish, usage = choice.message.tool_calls, choice.message.content, choice.finish_reason, msg.usage
    else:
        chunks = list(openai_sdk(up).chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
        assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 11
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        args = "".join(tc.function.arguments or "" for c in chunks if c.choices
                       for tc in (c.choices[0].delta.tool_calls or []))
        names = [tc.function.name for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])
                 if tc.function.name]
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        assert names == ["view"] and json.loads(args) == CALL["arguments"]
        assert len([c for c in chunks if c.choices and c.choices[0].delta.tool_calls]) > 2  # fragments
        calls, usage = None, chunks[-1].usage
    assert text == "let me look" and finish == "tool_calls" and usage.completion_tokens == 7
    if calls is not None:
        assert calls[0].id == "call_1" and json.loads(calls[0].function.arguments) == CALL["arguments"]
    assert up.requests[0].stream is stream


def test_chat_stream_without_include_usage_has_no_usage_chunk(up):
    up.script("plain words here")
    chunks = list(openai_sdk(up).chat.completions.create(model="m", messages=[], stream=True))
    assert all(c.choices for c in chunks) and "".join(c.choices[0].delta.content or "" for c in chunks) == \
        "plain words here"


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_tool_use(up, stream):
    up.script(Reply("checking", tool_calls=[CALL], tokens_in=21, tokens_out=9))
    kw = dict(model="m", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    sdk = anthropic_sdk(up)
    if stream:
        with sdk.messages.stream(**kw) as s:
            msg = s.get_final_message()
    else:
        msg = sdk.messages.create(**kw)
    assert [b.type for b in msg.content] == ["text", "tool_use"]
    assert msg.content[0].text == "checking"
    assert msg.content[1].id == "call_1" and msg.content[1].input == CALL["arguments"]
    assert msg.stop_reason == "tool_use" and msg.usage.input_tokens == 21 and msg.usage.output_tokens == 9


@pytest.mark.parametrize("stream", [False, True])
def test_responses_function_call(up, stream):
    up.script(Reply("on it", tool_calls=[CALL], tokens_in=31, tokens_out=5))
    sdk = openai_sdk(up)
    if stream:
        with sdk.responses.stream(model="m", input="hi") as s:
            kinds = [e.type for e in s]
            resp = s.get_final_response()
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        assert "response.function_call_arguments.delta" in kinds and "response.output_text.delta" in kinds
    else:
        resp = sdk.responses.create(model="m", input="hi")
    assert resp.output_text == "on it"
    [call] = [o for o in resp.output if o.type == "function_call"]
    assert call.call_id == "call_1" and call.name == "view" and json.loads(call.arguments) == CALL["arguments"]
    assert resp.usage.input_tokens == 31 and resp.usage.output_tokens == 5


def test_callable_replies_count_tokens_fallback_and_query_strings(up):
    up.script(lambda req: Reply(f"you said {req.body['messages'][0]['content']}"))
    up.fallback = "side call"
    sdk = anthropic_sdk(up)
    first = sdk.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "ping"}])
    assert first.content[0].text == "you said ping"
    counted = httpx.post(up.url + "/v1/messages/count_tokens?beta=true", json={"model": "m", "messages": []})
    assert counted.status_code == 200 and counted.json()["input_tokens"] >= 1
    assert sdk.messages.create(model="m", max_tokens=5, messages=[]).content[0].text == "side call"
    assert [r.route for r in up.requests] == ["/v1/messages", "/v1/messages/count_tokens", "/v1/messages"]


def test_stream_is_flushed_event_by_event_gate_and_cut(up):
    gate = threading.Event()
    up.script(Reply("one two three", gate=gate), Reply("a b c d e f", cut_after=3))
    with httpx.stream("POST", up.url + "/v1/messages", json={"stream": True, "messages": []}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.iter_raw()
        first = next(raw)
        assert first.startswith(b"event: message_start") and not up.requests[0].done.is_set()
        assert up.requests[0].chunks_sent == 1
        gate.set()
        rest = b"".join(raw)
    assert up.requests[0].gate_released is True and rest.endswith(b'data: {"type": "message_stop"}\n\n')
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("POST", up.url + "/v1/messages", json={"stream": True}) as r:
            b"".join(r.iter_raw())
    assert up.requests[1].chunks_sent == 3
