"""One chat call to an upstream model, over the official SDKs (plain Python, no Django).

``LLMClient(config).complete(system, messages)`` speaks OpenAI Chat Completions
(``openai_chat``) or Anthropic Messages (``anthropic``) and always returns a ``ChatResult``:
HTTP errors, timeouts, refused connections and unreadable bodies come back with ``error`` set
(and ``status_code`` where the server answered), never as exceptions. SDK retries are off; the
caller owns the retry budget. ``LLMClient(config).send(body)`` sends a protocol-native body
as it is (tools, tool calls, tool results: the agent loop's way in) with the same guarantees.

``request`` and ``response`` are the JSON bodies as sent and as received, ready to be stored.
The API key travels only in the SDK's auth header: it is not part of ``request``, of any
``repr()``, of log lines or of error texts (and is scrubbed from anything the server echoes).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable
from urllib.parse import urlsplit

from episodes.engine.llm.scrub import Scrubber
from episodes.engine.llm.usage import Prices, Usage, family_of, usage_of

log = logging.getLogger(__name__)

PROTOCOLS = ("openai_chat", "anthropic")
MAX_ERROR_CHARS = 2000
# what _extract says about a well-formed reply that has no text (fine when tools were offered)
_NO_TEXT_PROBLEMS = ("response message has no text content", "response has no text content")


@dataclass
class EndpointConfig:
    """Where and how to call a model. ``base_url`` may be the server root or end in ``/v1``
    (for ``openai_chat`` a URL with another path, e.g. ``.../api/openai``, is used as given)."""

    protocol: str
    base_url: str
    model: str
    api_key: str = field(default="", repr=False)
    usd_per_mtok_in: float | Decimal = 0
    usd_per_mtok_out: float | Decimal = 0
    timeout_s: float = 120
    max_tokens: int = 4096
    usd_per_mtok_cache_read: float | Decimal | None = None  # None: the provider's published ratio
    usd_per_mtok_cache_write: float | Decimal | None = None

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unsupported protocol {self.protocol!r} (expected one of {', '.join(PROTOCOLS)})")

    def __repr__(self) -> str:
        return (
            f"EndpointConfig(protocol={self.protocol!r}, base_url={self.base_url!r}, model={self.model!r}, "
            f"api_key={'<set>' if self.api_key else '<unset>'}, usd_per_mtok_in={self.usd_per_mtok_in}, "
            f"usd_per_mtok_out={self.usd_per_mtok_out}, timeout_s={self.timeout_s}, max_tokens={self.max_tokens})"
        )

    @property
    def prices(self) -> Prices:
        return Prices(self.usd_per_mtok_in, self.usd_per_mtok_out, self.usd_per_mtok_cache_read,
                      self.usd_per_mtok_cache_write, family=family_of(self.protocol))

    def cost(self, usage: Usage) -> float:
        return self.prices.cost(usage)

    def sdk_base_url(self) -> str:
        url = (self.base_url or "").strip().rstrip("/")
        if self.protocol == "anthropic":
            # The Anthropic SDK appends /v1/messages itself.
            return url[: -len("/v1")] if url.endswith("/v1") else url
        # The OpenAI SDK appends /chat/completions; a bare host gets the usual /v1.
        return url + "/v1" if urlsplit(url).path in ("", "/") else url


@dataclass
class ChatResult:
    text: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cache_read: int = 0  # of tokens_in (see usage.Usage)
    cache_write: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    request: dict = field(default_factory=dict)
    response: dict = field(default_factory=dict)
    status_code: int | None = None
    error: str = ""
    protocol: str = ""
    model: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def scrub(self, secret: str) -> None:
        """The key out of what the server sent back (an error, a body, a text that echoes it)."""
        scrub = Scrubber(secret)
        self.error, self.response, self.text = scrub.obj(self.error), scrub.obj(self.response), scrub.obj(self.text)


def _body_of(http_response) -> tuple[dict, str]:
    """(JSON body as a dict, problem) — non-JSON or non-object bodies are kept as ``{"raw": text}``."""
    try:
        text = http_response.text
    except Exception as exc:  # body could not be read or decoded
        return {}, f"unreadable response body: {type(exc).__name__}"
    try:
        body = json.loads(text)
    except ValueError:
        return {"raw": text[:MAX_ERROR_CHARS]}, "response body is not JSON"
    if not isinstance(body, dict):
        return {"raw": text[:MAX_ERROR_CHARS]}, "response body is not a JSON object"
    return body, ""


def _error_message(body: dict) -> str:
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])
    if isinstance(err, str):
        return err
    if isinstance(body, dict) and "raw" in body:
        return str(body["raw"])[:300]
    return ""


class LLMClient:
    """A provider-agnostic chat client. ``on_call`` (optional) sees every ``ChatResult``."""

    def __init__(self, config: EndpointConfig, on_call: Callable[[ChatResult], None] | None = None):
        self.config = config
        self.on_call = on_call
        self._sdk = None

    def __repr__(self) -> str:
        return f"<LLMClient {self.config.protocol} {self.config.model} at {self.config.base_url}>"

    # -- SDK plumbing -------------------------------------------------------------------------

    def _client(self):
        if self._sdk is None:
            cfg = self.config
            # A placeholder key keeps the SDKs from reading one out of the environment.
            key = cfg.api_key or "unset"
            if cfg.protocol == "openai_chat":
                import openai

                self._sdk = openai.OpenAI(
                    base_url=cfg.sdk_base_url(), api_key=key, max_retries=0, timeout=cfg.timeout_s
                )
            else:
                import anthropic

                self._sdk = anthropic.Anthropic(
                    base_url=cfg.sdk_base_url(), api_key=key, max_retries=0, timeout=cfg.timeout_s
                )
        return self._sdk

    def build_request(self, system: str, messages: list[dict]) -> dict:
        """The JSON body that will be sent (no credentials in it)."""
        cfg = self.config
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        if cfg.protocol == "openai_chat":
            if system:
                msgs = [{"role": "system", "content": system}, *msgs]
            return {"model": cfg.model, "messages": msgs, "max_tokens": cfg.max_tokens}
        body = {"model": cfg.model, "max_tokens": cfg.max_tokens, "messages": msgs}
        if system:
            body["system"] = system
        return body

    def _send(self, body: dict):
        sdk = self._client()
        if self.config.protocol == "openai_chat":
            return sdk.chat.completions.with_raw_response.create(**body)
        return sdk.messages.with_raw_response.create(**body)

    @staticmethod
    def _extract(protocol: str, body: dict) -> tuple[str, Usage, str]:
        """(text, usage, problem) from a successful response body."""
        usage = usage_of(protocol, body)
        if protocol == "openai_chat":
            choices = body.get("choices")
            if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
                return "", usage, "response has no choices"
            message = choices[0].get("message")
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):  # some compatible servers send content parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            if not isinstance(content, str) or not content:
                return "", usage, "response message has no text content"
            return content, usage, ""
        blocks = body.get("content")
        if not isinstance(blocks, list):
            return "", usage, "response has no content blocks"
        text = "".join(
            b["text"]
            for b in blocks
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        )
        if not text:
            return "", usage, "response has no text content"
        return text, usage, ""

    # -- the call -----------------------------------------------------------------------------

    def complete(self, system: str, messages: list[dict]) -> ChatResult:
        """A plain text exchange: ``messages`` are ``{"role", "content": str}``; a reply without
        text is an error."""
        return self._call(self.build_request(system, messages), need_text=True)

    def send(self, body: dict) -> ChatResult:
        """Send a protocol-native request ``body`` as it is (tools, tool calls and tool results
        included; ``model`` and ``max_tokens`` are filled in when missing) — what the agent loop
        uses. ``response`` is the body received, with tokens and cost from its usage and
        ``text`` its text if any; a reply with only tool calls is not an error."""
        cfg = self.config
        body = {"model": cfg.model, "max_tokens": cfg.max_tokens, **body}
        return self._call(body, need_text=False)

    def _call(self, request: dict, need_text: bool) -> ChatResult:
        cfg = self.config
        result = ChatResult(request=request, protocol=cfg.protocol, model=cfg.model)
        try:
            self._client()  # build (and import) the SDK outside the timed call
        except Exception as exc:
            result.error = f"cannot set up the {cfg.protocol} client: {type(exc).__name__}: {exc}"
            result.scrub(cfg.api_key)
            if self.on_call is not None:
                self.on_call(result)
            return result
        started = time.perf_counter()
        usage = Usage()
        try:
            raw = self._send(dict(request))
            result.status_code = raw.status_code
            body, problem = _body_of(raw.http_response)
            result.response = body
            if problem:
                result.error = f"HTTP {raw.status_code}: {problem}"
            else:
                text, usage, problem = self._extract(cfg.protocol, body)
                result.text, result.tokens_in, result.tokens_out = text, usage.tokens_in, usage.tokens_out
                result.cache_read, result.cache_write = usage.cache_read, usage.cache_write
                if problem and (need_text or problem not in _NO_TEXT_PROBLEMS):
                    result.error = f"HTTP {raw.status_code}: {problem}"
        except Exception as exc:  # the SDKs' own errors and anything else on the way
            result.error, result.status_code, result.response = self._describe(exc)
        result.latency_ms = (time.perf_counter() - started) * 1000
        result.cost_usd = cfg.cost(usage)
        result.scrub(cfg.api_key)
        result.error = result.error[:MAX_ERROR_CHARS]
        if result.error:
            log.warning("%s call to %s failed: %s", cfg.protocol, cfg.model, result.error)
        else:
            log.info(
                "%s call to %s: %d in / %d out tokens, %.0f ms",
                cfg.protocol, cfg.model, result.tokens_in, result.tokens_out, result.latency_ms,
            )
        if self.on_call is not None:
            self.on_call(result)
        return result

    def _describe(self, exc: Exception) -> tuple[str, int | None, dict]:
        if self.config.protocol == "openai_chat":
            import openai as sdk
        else:
            import anthropic as sdk
        if isinstance(exc, sdk.APIStatusError):
            body, _ = _body_of(exc.response)
            message = _error_message(body) or type(exc).__name__
            return f"HTTP {exc.status_code}: {message}", exc.status_code, body
        if isinstance(exc, sdk.APITimeoutError):
            return f"timed out after {self.config.timeout_s:g}s", None, {}
        if isinstance(exc, sdk.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            detail = f" ({type(cause).__name__})" if cause is not None else ""
            return f"connection error: could not reach {self.config.base_url}{detail}", None, {}
        return f"{type(exc).__name__}: {exc}", None, {}
