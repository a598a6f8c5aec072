"""Reassembling streamed answers (no server, no database): event boundaries anywhere in the
bytes, CRLF line ends, thinking and tool input fragments, broken or truncated streams; and the
upstream URL for each base URL form."""
import json

import pytest

from episodes.solving.gateway.core import Upstream
from episodes.engine.llm.usage import Usage, usage_of
from episodes.solving.gateway.reassemble import Reassembler, SSEDecoder
from tests.llm.fake_upstream import STREAMERS, Reply

CALL = {"id": "call_9", "name": "bash", "arguments": {"command": "pytest -q tests/test_tax.py", "timeout": 30}}


def feed_in_pieces(protocol, data: bytes, size: int) -> Reassembler:
    r = Reassembler(protocol)
    for i in range(0, len(data), size):
        r.feed(data[i:i + size])
    return r


@pytest.mark.parametrize("size", [1, 7, 4096])
@pytest.mark.parametrize("protocol", ["openai_chat", "anthropic", "openai_responses"])
def test_any_chunking_gives_the_same_answer(protocol, size):
    body = {"stream": True, "stream_options": {"include_usage": True}}
    data = b"".join(STREAMERS[protocol](Reply("two words", tool_calls=[CALL], tokens_in=9, tokens_out=4),
                                        "m", 1, body))
    r = feed_in_pieces(protocol, data, size)
    result = r.result()
    assert r.finished and r.error == ""
    assert (usage_of(protocol, result).tokens_in, usage_of(protocol, result).tokens_out) == (9, 4)
    if protocol == "openai_chat":
        message = result["choices"][0]["message"]
        assert message["content"] == "two words" and result["choices"][0]["finish_reason"] == "tool_calls"
        assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == CALL["arguments"]
    elif protocol == "anthropic":
        assert result["content"][0]["text"] == "two words" and result["content"][1]["input"] == CALL["arguments"]
        assert result["stop_reason"] == "tool_use"
    else:
        assert result["output"][1]["call_id"] == "call_9" and result["status"] == "completed"


def test_crlf_comments_and_multiline_data():
    decoder = SSEDecoder()
    events = list(decoder.feed(b": keep-alive\r\nevent: a\r\ndata: {\"x\":\r\ndata: 1}\r\n\r\ndata: tail"))
    assert events == [("a", '{"x":\n1}')]
    assert list(decoder.close()) == [("", "tail")]


def test_anthropic_thinking_and_malformed_tool_input_are_kept():
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "m", "role": "assistant", "content": [],
                                                                "usage": {"input_tokens": 5, "cache_read_input_tokens": 3}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "thinking", "thinking": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "signature_delta", "signature": "sig"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1,
                                 "content_block": {"type": "tool_use", "id": "t", "name": "x", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": '{"a": '}}),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ]
    r = Reassembler("anthropic")
    r.feed(b"".join(f"event: {e}\ndata: {json.dumps(d)}\n\n".encode() for e, d in events))
    result = r.result()
    assert result["content"][0] == {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    assert result["content"][1]["input"] == {"_partial_json": '{"a": '}  # cut off, kept as it came
    assert r.error == "Overloaded" and not r.finished
    assert usage_of("anthropic", result) == Usage(8, 0, cache_read=3)


def test_garbage_in_a_stream_is_an_error_not_an_exception():
    r = Reassembler("openai_chat")
    r.feed(b"data: {not json}\n\ndata: [DONE]\n\n")
    assert r.error.startswith("unparseable stream event") and r.finished
    assert r.result()["choices"] == []


@pytest.mark.parametrize("protocol,base,route,url", [
    ("anthropic", "http://h:1", "/v1/messages", "http://h:1/v1/messages"),
    ("anthropic", "http://h:1/v1/", "/v1/messages/count_tokens", "http://h:1/v1/messages/count_tokens"),
    ("openai_chat", "http://h:1", "/v1/chat/completions", "http://h:1/v1/chat/completions"),
    ("openai_responses", "https://h/v1", "/v1/responses", "https://h/v1/responses"),
    ("openai_chat", "https://h/api/openai/", "/v1/chat/completions", "https://h/api/openai/chat/completions"),
])
def test_upstream_urls(protocol, base, route, url):
    upstream = Upstream(protocol, base, "sk-secret", "m", 3, 15)
    assert upstream.url_for(route) == url
    assert "sk-secret" not in repr(upstream)
    assert upstream.cost(Usage(1_000_000, 0)) == 3
