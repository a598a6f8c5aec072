"""LLMClient against the scripted local server, through the real OpenAI and Anthropic SDKs."""
import logging
import socket
from decimal import Decimal

import pytest

from episodes.engine.llm.usage import Usage

from episodes.engine.llm import ChatResult, EndpointConfig, LLMClient

from .fake_upstream import Reply

KEY = "sk-test-SECRET-4f9c2a71e0"
PROTOCOLS = ["openai_chat", "anthropic"]


def client_for(upstream, protocol, **kw):
    kw.setdefault("api_key", KEY)
    return LLMClient(EndpointConfig(protocol, upstream.url, "model-x", **kw))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_round_trip_through_the_sdk(fake_upstream, protocol):
    fake_upstream.script(Reply("hello there", tokens_in=1000, tokens_out=2000))
    seen = []
    client = LLMClient(
        EndpointConfig(protocol, fake_upstream.url, "model-x", api_key=KEY, usd_per_mtok_in=3, usd_per_mtok_out=15,
                       max_tokens=321),
        on_call=seen.append,
    )
    result = client.complete("be brief", [{"role": "user", "content": "hi"}])

    assert result.error == "" and result.ok
    assert result.text == "hello there"
    assert (result.tokens_in, result.tokens_out) == (1000, 2000)
    assert result.cost_usd == pytest.approx(1000 * 3 / 1e6 + 2000 * 15 / 1e6)
    assert result.status_code == 200 and result.latency_ms > 0
    assert seen == [result]

    [sent] = fake_upstream.requests
    assert sent.body == result.request  # stored request is the body as sent
    if protocol == "openai_chat":
        assert sent.path == "/v1/chat/completions"
        assert sent.body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
        assert sent.headers["authorization"] == f"Bearer {KEY}"
        assert result.response["choices"][0]["message"]["content"] == "hello there"
    else:
        assert sent.path.split("?")[0] == "/v1/messages"
        assert sent.body["system"] == "be brief"
        assert sent.body["messages"] == [{"role": "user", "content": "hi"}]
        # Anthropic's SDK sends the key as x-api-key or (newer versions) as a bearer token.
        assert sent.headers.get("x-api-key") == KEY or sent.headers.get("authorization") == f"Bearer {KEY}"
        assert result.response["content"][0]["text"] == "hello there"
    assert sent.body["model"] == "model-x" and sent.body["max_tokens"] == 321
    # The key travels in exactly one header and nowhere else.
    assert KEY.encode() not in sent.raw
    assert [name for name, value in sent.headers.items() if KEY in value] in (["authorization"], ["x-api-key"])
    assert KEY not in sent.path


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("status", [500, 429])
def test_http_errors_come_back_as_results_without_sdk_retries(fake_upstream, protocol, status):
    fake_upstream.script(Reply.error(status, "overloaded, try later"), "never reached")
    result = client_for(fake_upstream, protocol).complete("", [{"role": "user", "content": "hi"}])
    assert result.status_code == status
    assert result.error.startswith(f"HTTP {status}") and "overloaded" in result.error
    assert result.text == "" and result.cost_usd == 0
    assert result.response["error"]["message"] == "overloaded, try later"
    assert len(fake_upstream.requests) == 1  # max_retries=0: the caller owns the budget
    assert fake_upstream.pending == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_garbage_body_is_an_error_not_an_exception(fake_upstream, protocol):
    fake_upstream.script(Reply.garbage(b"<html>502 Bad Gateway</html>"), Reply(raw=b'{"unexpected": true}'))
    client = client_for(fake_upstream, protocol)
    first = client.complete("", [{"role": "user", "content": "hi"}])
    assert first.status_code == 200 and "not JSON" in first.error
    assert first.response == {"raw": "<html>502 Bad Gateway</html>"}
    second = client.complete("", [{"role": "user", "content": "hi"}])
    assert second.error and second.response == {"unexpected": True} and second.text == ""


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unreachable_and_slow_upstreams(fake_upstream, protocol):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    dead = LLMClient(EndpointConfig(protocol, f"http://127.0.0.1:{dead_port}", "m", api_key=KEY, timeout_s=5))
    result = dead.complete("", [{"role": "user", "content": "hi"}])
    assert result.status_code is None and result.error.startswith("connection error")

    fake_upstream.script(Reply("late", delay_s=1.5))
    slow = client_for(fake_upstream, protocol, timeout_s=0.3).complete("", [{"role": "user", "content": "hi"}])
    assert slow.status_code is None and "timed out" in slow.error


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_key_never_leaks_into_repr_logs_or_errors(fake_upstream, protocol, caplog):
    caplog.set_level(logging.DEBUG)  # SDK and httpx debug logging included
    # A hostile upstream that echoes the key back in its error and in a "successful" reply.
    fake_upstream.script(Reply.error(401, f"invalid api key {KEY}"), Reply(f"your key is {KEY}"))
    client = client_for(fake_upstream, protocol)
    bad = client.complete("", [{"role": "user", "content": "hi"}])
    echoed = client.complete("", [{"role": "user", "content": "hi"}])

    assert bad.status_code == 401 and "[redacted]" in bad.error
    for text in (bad.error, repr(bad), repr(echoed), repr(client), repr(client.config), str(client.config),
                 str(bad.request), str(bad.response), str(echoed.response), echoed.text, caplog.text):
        assert KEY not in text
    assert "api_key=<set>" in repr(client.config)
    for sent in fake_upstream.requests:
        assert KEY.encode() not in sent.raw


def test_base_url_forms(fake_upstream):
    fake_upstream.script("a", "b", "c", "d")
    for protocol, url in [("openai_chat", fake_upstream.url + "/v1"), ("openai_chat", fake_upstream.url + "/"),
                          ("anthropic", fake_upstream.url + "/v1/"), ("anthropic", fake_upstream.url)]:
        client = LLMClient(EndpointConfig(protocol, url, "m", api_key=KEY))
        result = client.complete("", [{"role": "user", "content": "x"}])
        assert result.ok, result.error
    assert [r.path.split("?")[0] for r in fake_upstream.requests] == [
        "/v1/chat/completions", "/v1/chat/completions", "/v1/messages", "/v1/messages"
    ]


def test_cost_from_decimal_prices_and_anthropic_cache_tokens():
    config = EndpointConfig(
        "anthropic", "http://x", "m", usd_per_mtok_in=Decimal("0.8000"), usd_per_mtok_out=Decimal("4")
    )
    assert config.cost(Usage(1_000_000, 250_000)) == pytest.approx(1.8)
    body = {"content": [{"type": "text", "text": "t"}],
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7}}
    assert LLMClient._extract("anthropic", body) == ("t", Usage(15, 7, cache_read=5), "")


def test_unknown_protocol_is_refused_and_results_default_empty():
    with pytest.raises(ValueError):
        EndpointConfig("carrier_pigeon", "http://x", "m")
    assert ChatResult().ok and ChatResult(error="x").ok is False
