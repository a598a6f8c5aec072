"""The recording gateway's forwarding core: a plain ASGI application, no Django.

Agents talk to the gateway as if it were their model API; the gateway swaps the per-episode
token for the endpoint's real key, forwards the call, passes the answer back byte for byte
(streams chunk by chunk, never buffered) and hands a description of the call to a ``record``
hook once the client has the whole answer. Forwarding uses aiohttp (one ``ClientSession``, one
connection pool): measured here it costs a quarter of the CPU per call of httpx's AsyncClient.

    app = GatewayApp(resolve=async_fn(token) -> Upstream | None, record=async_fn(call: dict))

Routes: ``POST /v1/chat/completions``, ``/v1/responses`` (OpenAI), ``/v1/messages``,
``/v1/messages/count_tokens`` (Anthropic), query strings kept (``?beta=true``), each also under
``/t/<token>/``; ``GET /healthz``. The token is taken from the path, ``X-Api-Key`` or
``Authorization: Bearer`` (the first one that resolves).

Answers the gateway makes itself are in the calling protocol's error shape: 401 unknown or
expired token (nothing forwarded), 400 protocol mismatch (an Anthropic endpoint called on an
OpenAI route or the reverse), 404 unknown route, 405 wrong method, 413 request too large, 502
upstream unreachable or broken before answering, 504 upstream timed out. Upstream answers,
errors included, are passed back with their status, headers and body unchanged. A call past the
episode's step, token or cost budget, or after the upstream failed several times in a row, is
refused with a 400 without being forwarded (``budget.py``).

The ``call`` dict handed to ``record``: episode_id, endpoint_id, protocol (of the route), path,
streamed, request (JSON body as forwarded; ``{"raw": ...}`` if not JSON), response (the
reassembled answer in the non-streaming shape), raw_stream (SSE bytes as text, capped at
``raw_stream_max_bytes`` with a truncation note), status_code, error, tokens_in, tokens_out,
cache_read, cache_write (parts of tokens_in), cost_usd (cache priced apart), latency_ms, ttfb_ms, step (a
completed generation of a request offering tools: 2xx, no error, not count_tokens), refused (the
limit a call was refused for, see budget.py: it was not forwarded).
The real key and the token are scrubbed from everything in it.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Awaitable, Callable

import aiohttp

try:  # pydantic's Rust JSON (installed with the OpenAI/Anthropic SDKs): 2-3× faster on big agent requests
    from pydantic_core import from_json as _loads, to_json as _dumps
except ImportError:  # pragma: no cover
    def _loads(data):
        return json.loads(data)

    def _dumps(value) -> bytes:
        return json.dumps(value).encode()

from episodes.engine.llm.client import EndpointConfig
from episodes.engine.llm.usage import Usage, usage_of
from episodes.engine.llm.scrub import Scrubber

from episodes.solving.gateway.budget import REFUSAL_STATUS, Budget, Ledger, Spent
from episodes.solving.gateway.reassemble import Reassembler

log = logging.getLogger("bugforge.gateway")

ROUTES = {
    "/v1/chat/completions": "openai_chat",
    "/v1/responses": "openai_responses",
    "/v1/messages": "anthropic",
    "/v1/messages/count_tokens": "anthropic",
}
FAMILY = {"openai_chat": "openai", "openai_responses": "openai", "anthropic": "anthropic"}
FAMILY_ROUTES = {"openai": "/v1/chat/completions and /v1/responses",
                 "anthropic": "/v1/messages and /v1/messages/count_tokens"}
PROTOCOL_NAMES = {"openai_chat": "OpenAI Chat Completions", "openai_responses": "OpenAI Responses",
                  "anthropic": "Anthropic Messages"}
# Agent headers worth passing on; everything else (auth above all) stays here.
FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "anthropic-version", "anthropic-beta", "openai-beta",
                             "user-agent")
# Hop-by-hop headers, and the ones the ASGI server writes itself.
DROPPED_RESPONSE_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-authenticate",
                            "proxy-authorization", "te", "trailer", "upgrade", "date", "server"}
MAX_ERROR_CHARS = 2000


@dataclass
class Upstream:
    """Where a token's calls go: the endpoint's wire protocol, URL, real key, model and prices."""

    protocol: str
    base_url: str
    api_key: str = field(default="", repr=False)
    model: str = ""
    usd_per_mtok_in: Decimal | float = 0
    usd_per_mtok_out: Decimal | float = 0
    usd_per_mtok_cache_read: Decimal | float | None = None
    usd_per_mtok_cache_write: Decimal | float | None = None
    episode_id: int | None = None
    endpoint_id: int | None = None
    budget: Budget | None = None  # the episode's limits, enforced per call (see budget.py)
    spent: Spent | None = None  # the episode's recorded totals when the token was looked up

    def __post_init__(self):
        # One normalisation of base URLs and one cost rule for the whole project: the LLM client's.
        self._config = EndpointConfig(
            "anthropic" if self.protocol == "anthropic" else "openai_chat", self.base_url, self.model,
            usd_per_mtok_in=self.usd_per_mtok_in, usd_per_mtok_out=self.usd_per_mtok_out,
            usd_per_mtok_cache_read=self.usd_per_mtok_cache_read, usd_per_mtok_cache_write=self.usd_per_mtok_cache_write,
        )

    def url_for(self, route: str) -> str:
        base = self._config.sdk_base_url()
        # Anthropic's base is the server root; an OpenAI base already ends in /v1 (or its own path).
        return base + (route if self.protocol == "anthropic" else route[len("/v1"):])

    def cost(self, usage: Usage) -> float:
        return self._config.cost(usage)

    def auth_headers(self) -> list[tuple[str, str]]:
        if not self.api_key:
            return []
        if self.protocol == "anthropic":
            return [("x-api-key", self.api_key)]
        return [("authorization", f"Bearer {self.api_key}")]


Resolve = Callable[[str], Awaitable["Upstream | None"]]
Record = Callable[[dict], Awaitable[None]]


def error_body(protocol: str, status: int, message: str) -> dict:
    """An error in the shape the agent's SDK expects for ``protocol``."""
    kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
            405: "invalid_request_error", 413: "request_too_large", 429: "rate_limit_error",
            504: "timeout_error"}.get(status, "api_error")
    if protocol == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    code = {401: "invalid_api_key"}.get(status)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _route_protocol_guess(route: str) -> str:
    return "anthropic" if "/messages" in route else "openai_chat"


def _bearer(value: str | None) -> str:
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return ""


def _buffered(stream) -> bytes:
    """What an aiohttp stream has received but not handed over (private API; aiohttp is pinned)."""
    try:
        return stream._read_nowait(-1)
    except Exception:  # nothing there, or the internals changed
        return b""


class _ClientGone(Exception):
    pass


class _UpstreamBroke(Exception):
    """The upstream connection failed after the answer had started: the client's is cut too."""


def _new_call(upstream: Upstream, protocol: str, path: str, request_doc) -> dict:
    """The record of one call, before it is forwarded (the request as stored, scrubbed)."""
    return {
        "episode_id": upstream.episode_id, "endpoint_id": upstream.endpoint_id, "protocol": protocol,
        "path": path[:200], "streamed": isinstance(request_doc, dict) and request_doc.get("stream") is True,
        "request": request_doc, "response": {}, "raw_stream": "", "status_code": None, "error": "",
        "tokens_in": 0, "tokens_out": 0, "cache_read": 0, "cache_write": 0, "cost_usd": 0.0,
        "latency_ms": None, "ttfb_ms": None, "step": False, "refused": "",
    }


def _upstream_headers(protocol: str, headers: dict, upstream: Upstream) -> list[tuple[str, str]]:
    """The agent's headers the upstream needs, plus the endpoint's own credentials."""
    out = [(k, headers[k]) for k in FORWARDED_REQUEST_HEADERS if k in headers]
    if protocol == "anthropic" and "anthropic-version" not in headers:
        out.append(("anthropic-version", "2023-06-01"))
    return out + [("accept-encoding", "identity"), *upstream.auth_headers()]


async def _until_disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _Relay:
    """Passes the upstream's answer to the client as it arrives, keeping what the record needs:
    the bytes (capped for a stream, whose body is reassembled instead), their total and the time
    of the first byte."""

    def __init__(self, send, response, watching: asyncio.Future, reassembler: Reassembler | None, raw_cap: int):
        self.send, self.response, self.watching = send, response, watching
        self.reassembler, self.raw_cap = reassembler, raw_cap
        self.raw = bytearray()
        self.total = 0
        self.first_byte_at: float | None = None

    async def run(self) -> str:
        """Relay until the answer ends, the client hangs up or the upstream breaks; the call's
        error ("" when it went through)."""
        pumping = asyncio.ensure_future(self._pump())
        error = ""
        try:
            await asyncio.wait({pumping, self.watching}, return_when=asyncio.FIRST_COMPLETED)
            if not pumping.done() or isinstance(pumping.exception(), _ClientGone):
                pumping.cancel()
                error = "client disconnected"
                await asyncio.gather(pumping, return_exceptions=True)
            elif isinstance(pumping.exception(), _UpstreamBroke):
                error = f"upstream stream broken: {pumping.exception()}"
            elif pumping.exception() is not None:
                raise pumping.exception()
        finally:
            self.watching.cancel()
            if not pumping.done():  # we are being cancelled ourselves (server shutdown)
                pumping.cancel()
            if pumping.done() and not pumping.cancelled() and pumping.exception() is None:
                self.response.release()  # read to the end: the connection goes back to the pool
            else:
                self.response.close()  # a half-read upstream connection is closed, not pooled
        return error

    async def _pump(self) -> None:
        response = self.response
        await self._to_client({"type": "http.response.start", "status": response.status, "headers": [
            (k, v) for k, v in response.raw_headers if k.decode("latin-1").lower() not in DROPPED_RESPONSE_HEADERS]})
        try:
            async for chunk in response.content.iter_any():
                await self._chunk(chunk)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            # aiohttp raises before handing over bytes that arrived just before the break:
            # those are passed on first, so the agent gets everything the upstream sent.
            leftover = _buffered(response.content)
            if leftover:
                await self._chunk(leftover)
            raise _UpstreamBroke(f"{type(exc).__name__}: {exc}") from exc
        if self.watching.done():
            raise _ClientGone()
        await self._to_client({"type": "http.response.body", "body": b"", "more_body": False})

    async def _chunk(self, chunk: bytes) -> None:
        await self._to_client({"type": "http.response.body", "body": chunk, "more_body": True})
        if self.first_byte_at is None:
            self.first_byte_at = time.perf_counter()
        self.total += len(chunk)
        if self.reassembler is not None:
            self.reassembler.feed(chunk)
            if len(self.raw) < self.raw_cap:
                self.raw.extend(chunk[: self.raw_cap - len(self.raw)])
        else:
            self.raw.extend(chunk)
        if self.watching.done():  # servers such as uvicorn drop sends to a closed client silently
            raise _ClientGone()

    async def _to_client(self, message: dict) -> None:
        try:
            await self.send(message)
        except OSError as exc:  # servers that raise, rather than ignore, a send to a closed client
            raise _ClientGone() from exc


class GatewayApp:
    """The ASGI application. One shared ``aiohttp.ClientSession`` (connection pool) per event
    loop, created on lifespan startup or on first use and closed on lifespan shutdown."""

    def __init__(self, resolve: Resolve, record: Record, *, timeout_s: float = 600, connect_timeout_s: float = 10,
                 max_request_bytes: int = 32 * 1024 * 1024, raw_stream_max_bytes: int = 4 * 1024 * 1024,
                 on_shutdown: Callable[[], Any] | None = None, max_upstream_failures: int = 3):
        self.resolve = resolve
        self.record = record
        # No total cap (a long generation is fine); a silent upstream times out between bytes.
        self.timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout_s, sock_read=timeout_s)
        self.max_request_bytes = max_request_bytes
        self.raw_stream_max_bytes = raw_stream_max_bytes
        self.on_shutdown = on_shutdown
        self.ledger = Ledger(max_upstream_failures)
        self._client: aiohttp.ClientSession | None = None

    # -- ASGI plumbing ------------------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def client(self) -> aiohttp.ClientSession:
        if self._client is None:
            self._client = aiohttp.ClientSession(
                timeout=self.timeout, auto_decompress=False,  # bytes pass through as sent
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
                cookie_jar=aiohttp.DummyCookieJar(),  # no state carried between agents' calls
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self.on_shutdown is not None:
            result = self.on_shutdown()
            if asyncio.iscoroutine(result):
                await result

    @staticmethod
    async def _json(send, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data, "more_body": False})

    @staticmethod
    async def _read_body(receive, limit: int) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    # -- one request --------------------------------------------------------------------------

    async def _http(self, scope, receive, send):
        started = time.perf_counter()  # latency and time to first byte include the gateway's own work
        path, method = scope["path"], scope["method"]
        if path == "/healthz":
            return await self._json(send, 200, {"status": "ok"})
        path_token, route = "", path
        if path.startswith("/t/"):
            path_token, _, rest = path[3:].partition("/")
            route = "/" + rest
        protocol = ROUTES.get(route)
        if protocol is None:
            guess = _route_protocol_guess(route)
            return await self._json(send, 404, error_body(guess, 404, f"the gateway has no route {route}"))
        if method != "POST":
            return await self._json(send, 405, error_body(protocol, 405, f"{route} takes POST"))

        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        upstream, token = None, ""
        for candidate in (path_token, headers.get("x-api-key", ""), _bearer(headers.get("authorization"))):
            if candidate:
                upstream = await self.resolve(candidate)
                if upstream is not None:
                    token = candidate
                    break
        if upstream is None:
            return await self._json(send, 401, error_body(
                protocol, 401, "invalid or expired gateway token (pass it as the API key or in the path /t/<token>/)"))
        if FAMILY[upstream.protocol] != FAMILY[protocol]:
            return await self._json(send, 400, error_body(protocol, 400, (
                f"this episode's endpoint speaks {PROTOCOL_NAMES[upstream.protocol]}: "
                f"call {FAMILY_ROUTES[FAMILY[upstream.protocol]]}, not {route}")))
        try:
            body = await self._read_body(receive, self.max_request_bytes)
        except _ClientGone:
            return
        if body is None:
            return await self._json(send, 413, error_body(
                protocol, 413, f"request body over {self.max_request_bytes} bytes"))
        query = scope.get("query_string", b"").decode("latin-1")
        await self._forward(receive, send, started, upstream, token, protocol, route, query, headers, body)

    def _prepare(self, upstream: Upstream, body: bytes) -> tuple[dict, bytes]:
        """(request to store, bytes to send): the endpoint's model replaces the agent's, since
        the endpoint (and its prices) is what the call really goes to."""
        try:
            parsed = _loads(body) if body else {}
        except ValueError:
            return {"raw": body.decode("utf-8", "replace")[:MAX_ERROR_CHARS]}, body
        if not isinstance(parsed, dict):
            return {"raw": body.decode("utf-8", "replace")[:MAX_ERROR_CHARS]}, body
        if upstream.model and parsed.get("model") != upstream.model:
            parsed["model"] = upstream.model
            body = _dumps(parsed)
        return parsed, body

    async def _forward(self, receive, send, started: float, upstream: Upstream, token: str, protocol: str,
                       route: str, query: str, headers: dict, body: bytes):
        scrub = Scrubber(upstream.api_key, token)
        request_doc, outgoing = self._prepare(upstream, body)
        path = route + (f"?{query}" if query else "")
        call = _new_call(upstream, protocol, path, scrub.obj(request_doc) if scrub.present_in(body) else request_doc)
        offers_tools = isinstance(request_doc, dict) and bool(request_doc.get("tools"))
        refusal = self.ledger.admit(upstream.episode_id, upstream.budget, upstream.spent, offers_tools)
        if refusal is not None:  # over budget, the upstream down, or too many in flight: not forwarded
            reason, message = refusal
            if reason == "busy":  # retryable, and no verdict on the episode
                return await self._failed(send, call, started, protocol, 429, message, scrub)
            call["refused"] = reason
            return await self._failed(send, call, started, protocol, REFUSAL_STATUS, message, scrub)
        call["_admitted"] = offers_tools  # for the ledger: admitted (in flight), and whether it reserved a step

        # The client may hang up at any time, also while the upstream is still thinking: then the
        # upstream request is dropped at once rather than when (if ever) it answers.
        watching = asyncio.ensure_future(_until_disconnect(receive))
        try:
            response = await self._request(upstream.url_for(route) + path[len(route):], outgoing,
                                           _upstream_headers(protocol, headers, upstream), watching)
        except _ClientGone:
            call.update(error="client disconnected", latency_ms=(time.perf_counter() - started) * 1000)
            return await self._record(call)
        except asyncio.TimeoutError as exc:
            watching.cancel()
            return await self._failed(send, call, started, protocol, 504,
                                      f"upstream timed out ({type(exc).__name__})", scrub)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            watching.cancel()
            return await self._failed(send, call, started, protocol, 502,
                                      f"could not reach the upstream ({type(exc).__name__}: {exc})", scrub)

        streamed = response.headers.get("content-type", "").startswith("text/event-stream")
        call["streamed"] = streamed or call["streamed"]
        call["status_code"] = response.status
        relay = _Relay(send, response, watching, Reassembler(protocol) if streamed else None,
                       self.raw_stream_max_bytes)
        call["error"] = await relay.run()
        call["latency_ms"] = (time.perf_counter() - started) * 1000
        call["ttfb_ms"] = (relay.first_byte_at - started) * 1000 if relay.first_byte_at is not None else None
        self._describe_answer(call, protocol, route, response, bytes(relay.raw), relay.total, relay.reassembler,
                              scrub, upstream)
        await self._record(call)
        # After a broken upstream stream the response is left incomplete: the ASGI server then
        # drops the client's connection, as the upstream dropped the gateway's.

    async def _request(self, url: str, data: bytes, headers: list, watching: asyncio.Future):
        """The upstream's response (headers read), unless the client hangs up first."""
        requesting = asyncio.ensure_future(
            self.client().request("POST", url, data=data, headers=headers, allow_redirects=False))
        await asyncio.wait({requesting, watching}, return_when=asyncio.FIRST_COMPLETED)
        if not requesting.done():
            requesting.cancel()
            await asyncio.gather(requesting, return_exceptions=True)
            raise _ClientGone()
        return requesting.result()

    def _describe_answer(self, call: dict, protocol: str, route: str, response, raw: bytes, total: int,
                         reassembler: Reassembler | None, scrub: Scrubber, upstream: Upstream) -> None:
        status = response.status
        problem = ""
        if reassembler is not None:
            body = reassembler.result()
            text = raw.decode("utf-8", "replace")
            if total > len(raw):
                text += f"\n[bugforge gateway: raw stream truncated, kept the first {len(raw)} of {total} bytes]\n"
            call["raw_stream"] = scrub.text(text) if scrub.present_in(raw) else text
            problem = reassembler.error
            if not problem and not reassembler.finished and not call["error"]:
                problem = "stream ended before its final event"
        else:
            encoding = response.headers.get("content-encoding", "").lower()
            if encoding in ("gzip", "deflate"):
                try:
                    raw = zlib.decompress(raw, 47)  # 47: gzip or zlib header, detected
                except zlib.error:
                    pass
            try:
                body = _loads(raw) if raw else {}
            except ValueError:
                body = None
            if not isinstance(body, dict):
                body, problem = {"raw": raw.decode("utf-8", "replace")[:MAX_ERROR_CHARS]}, "response body is not JSON"
        if scrub.present_in(_dumps(body)):
            body = scrub.obj(body)
        call["response"] = body
        if status >= 400:
            err = body.get("error") if isinstance(body, dict) else None
            message = (err.get("message") if isinstance(err, dict) else err) or problem or response.reason
            problem = f"HTTP {status}: {message}"
        elif problem:
            problem = f"HTTP {status}: {problem}"
        if problem and not call["error"]:
            call["error"] = scrub.text(str(problem))[:MAX_ERROR_CHARS]
        if route != "/v1/messages/count_tokens":
            usage = usage_of(protocol, body)
            call.update(tokens_in=usage.tokens_in, tokens_out=usage.tokens_out, cache_read=usage.cache_read,
                        cache_write=usage.cache_write, cost_usd=upstream.cost(usage))
            call["step"] = 200 <= status < 300 and not call["error"] and bool(call.get("_admitted"))

    async def _failed(self, send, call: dict, started: float, protocol: str, status: int, message: str,
                      scrub: Scrubber) -> None:
        message = scrub.text(message)[:MAX_ERROR_CHARS]
        payload = error_body(protocol, status, f"bugforge gateway: {message}")
        await self._json(send, status, payload)
        call.update(status_code=status, error=message, response=payload,
                    latency_ms=(time.perf_counter() - started) * 1000)
        await self._record(call)

    async def _record(self, call: dict) -> None:
        # before the (slower) store, so the next call sees it; the flag is the ledger's, not stored
        self.ledger.add(call["episode_id"], call, call.pop("_admitted", None))
        log.info("%s %s episode=%s status=%s tokens=%d/%d %.1f ms%s", call["protocol"], call["path"],
                 call["episode_id"], call["status_code"], call["tokens_in"], call["tokens_out"],
                 call["latency_ms"] or 0, f" error: {call['error'][:200]}" if call["error"] else "")
        try:
            await self.record(call)
        except Exception:  # the agent already has its answer; losing the record must be loud, not fatal
            log.exception("could not record a gateway call for episode %s", call["episode_id"])
