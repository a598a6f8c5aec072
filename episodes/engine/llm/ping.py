"""Test an endpoint's connection with the smallest real request (plain Python, no Django).

    result = ping(protocol, base_url, model, api_key)   # a ChatResult; result.ok, .error, .latency_ms

Chat Completions and Anthropic Messages go through ``LLMClient.send`` with a 1-token limit;
OpenAI Responses (which the client does not speak) is a direct POST to ``/v1/responses`` with
the smallest output limit the API accepts (16). Never raises; the key is never in the result.
"""
from __future__ import annotations

import json
import time

from episodes.engine.llm.client import ChatResult, EndpointConfig, LLMClient
from episodes.engine.llm.usage import usage_of

PROMPT = "Reply with OK."


def ping(protocol: str, base_url: str, model: str, api_key: str = "", timeout_s: float = 20) -> ChatResult:
    if protocol == "openai_responses":
        return _ping_responses(base_url, model, api_key, timeout_s)
    try:
        config = EndpointConfig(protocol, base_url, model, api_key=api_key, timeout_s=timeout_s, max_tokens=1)
    except ValueError as exc:
        return ChatResult(error=str(exc), protocol=protocol, model=model)
    return LLMClient(config).send({"messages": [{"role": "user", "content": PROMPT}]})


def _ping_responses(base_url: str, model: str, api_key: str, timeout_s: float) -> ChatResult:
    import httpx2 as httpx

    url = base_url.rstrip("/")
    url = (url if url.endswith("/v1") else url + "/v1") + "/responses"
    body = {"model": model, "input": PROMPT, "max_output_tokens": 16}
    result = ChatResult(request=body, protocol="openai_responses", model=model)
    started = time.perf_counter()
    try:
        response = httpx.post(url, json=body, headers={"Authorization": f"Bearer {api_key or 'unset'}"}, timeout=timeout_s)
        result.status_code = response.status_code
        try:
            result.response = response.json()
        except ValueError:
            result.response = {"raw": response.text[:2000]}
        if response.status_code >= 400 or not isinstance(result.response, dict):
            err = result.response.get("error") if isinstance(result.response, dict) else None
            message = err.get("message") if isinstance(err, dict) else json.dumps(result.response)[:300]
            result.error = f"HTTP {response.status_code}: {message}"
        else:
            usage = usage_of("openai_responses", result.response)
            result.tokens_in, result.tokens_out = usage.tokens_in, usage.tokens_out
            result.cache_read = usage.cache_read
    except Exception as exc:  # refused, timed out, bad URL
        result.error = f"connection error: could not reach {base_url} ({type(exc).__name__})"
    result.latency_ms = (time.perf_counter() - started) * 1000
    result.scrub(api_key)
    return result
