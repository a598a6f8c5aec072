"""A scripted model server on 127.0.0.1 for tests: real HTTP, the three wire protocols, real SSE.

    with FakeUpstream() as up:                    # or the ``fake_upstream`` fixture
        up.script("first reply", Reply.error(500), Reply.garbage(b"<html>"), "third reply")
        client = LLMClient(EndpointConfig("openai_chat", up.url, "m", api_key="sk-..."))
        ...
        up.requests[0].body["messages"], up.requests[0].headers["authorization"]

Routes (a query string such as ``?beta=true`` is allowed on every route):

* ``POST /v1/chat/completions``  OpenAI Chat Completions
* ``POST /v1/responses``         OpenAI Responses (what Codex speaks)
* ``POST /v1/messages``          Anthropic Messages
* ``POST /v1/messages/count_tokens`` answers ``{"input_tokens": N}`` (N = request bytes // 4, at
  least 1) without taking a scripted reply, so agents that call it at odd moments do not shift
  the script. Anything else is a 404 (recorded too).

The script is one queue shared by all routes: each request takes the next reply and it is shaped
for the path it hit. A script entry is

* a plain string — a successful text reply;
* ``Reply(...)`` — text and/or tool calls, usage, an HTTP error status, a raw (garbage) body,
  a delay before answering, extra headers, streaming options (below);
* a callable ``fn(recorded) -> Reply | str``, called with the ``Recorded`` request, so a test
  can react to what the agent sent (e.g. answer a tool result, or check a header).

When the script runs out, ``up.fallback`` answers (a string, ``Reply`` or callable, e.g. for the
small side calls CLIs make); if it is None (default) the server answers 500.

Tool calls: ``Reply(tool_calls=[{"id": "call_1", "name": "view", "arguments": {"path": "a.py"}}],
text="optional")`` — ``arguments`` a dict (or a JSON string, sent as given). Shaped per protocol:
Chat Completions ``message.tool_calls[{id, type: function, function: {name, arguments: <JSON
string>}}]`` with ``finish_reason: tool_calls``; Anthropic ``tool_use`` blocks ``{id, name,
input}`` after any text block, ``stop_reason: tool_use``; Responses ``function_call`` output
items ``{id: fc_…, call_id, name, arguments: <JSON string>}`` after any message item. An ``id``
left out is generated (``call_…`` / ``toolu_…``).

Streaming: a request whose JSON body has ``"stream": true`` is answered as Server-Sent Events
(``Content-Type: text/event-stream``, chunked transfer encoding, one HTTP chunk per SSE event,
flushed one by one), in the real event shapes:

* Chat Completions: ``data: {chat.completion.chunk}`` lines — a first delta with the role, text
  deltas word by word, tool calls as ``delta.tool_calls[{index, id, type, function: {name,
  arguments: ""}}]`` followed by argument fragments, a last chunk with ``finish_reason``, and,
  when ``stream_options.include_usage`` is set, a final chunk with ``choices: []`` and ``usage``
  (other chunks then carry ``usage: null``); then ``data: [DONE]``.
* Anthropic: ``message_start`` (usage with input_tokens), ``content_block_start`` /
  ``ping`` / ``content_block_delta`` (``text_delta``; ``input_json_delta`` with
  ``partial_json`` fragments) / ``content_block_stop`` per block, ``message_delta``
  (stop_reason, output usage), ``message_stop``.
* Responses: ``response.created``, ``response.in_progress``, per output item
  ``response.output_item.added``, (message) ``response.content_part.added`` /
  ``response.output_text.delta`` / ``response.output_text.done`` / ``response.content_part.done``,
  (function call) ``response.function_call_arguments.delta`` / ``…arguments.done``, then
  ``response.output_item.done``; finally ``response.completed`` with the whole response and
  ``usage``. Every event carries ``sequence_number``.

Streaming options on ``Reply``: ``chunk_delay_s`` sleeps before every event after the first;
``gate`` (a ``threading.Event``) holds the stream after its first event until the test sets it
(up to 10 s; ``recorded.gate_released`` says whether it was set in time) — a deterministic way to
prove a proxy forwards the first event before the upstream has finished; ``cut_after=N`` drops
the connection after N events (no terminating chunk), like an upstream that dies mid-stream.
An error status or a raw body is answered the same way whether or not streaming was asked.

Every request is recorded as ``Recorded`` (method, path, lower-cased headers, raw bytes, parsed
JSON body) in ``up.requests``, with what was answered and live progress for streams: ``sent``
(the response body bytes written so far, without HTTP chunk framing), ``chunks_sent`` (both
updated just before each write), ``done``
(an Event set once the whole response was written) and ``client_gone`` (the client hung up
while we were still writing).

Other test modules can import ``FakeUpstream``/``Reply`` or the ``fake_upstream`` fixture
(``from tests.llm.fake_upstream import fake_upstream``).
"""
from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Union

import pytest

ROUTES = ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/messages/count_tokens")
ARGUMENT_FRAGMENT = 12  # characters of tool-call arguments per streamed delta
GATE_TIMEOUT_S = 10


@dataclass
class Reply:
    text: str = ""
    tokens_in: int = 120
    tokens_out: int = 80
    status: int = 200
    raw: bytes | None = None  # sent as-is instead of a protocol-shaped body
    content_type: str = "application/json"
    delay_s: float = 0.0
    headers: dict = field(default_factory=dict)
    tool_calls: list[dict] = field(default_factory=list)
    chunk_delay_s: float = 0.0
    gate: threading.Event | None = None
    cut_after: int | None = None

    @classmethod
    def error(cls, status: int = 500, message: str = "upstream exploded", **kw) -> "Reply":
        return cls(status=status, raw=None, text=message, **kw)

    @classmethod
    def garbage(cls, body: bytes = b"<html>502 Bad Gateway</html>", status: int = 200) -> "Reply":
        return cls(status=status, raw=body, content_type="text/html")


Script = Union[str, Reply, Callable[["Recorded"], Union[Reply, str]]]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    raw: bytes
    body: dict | None
    chunks_sent: int = 0
    sent: bytes = b""
    done: threading.Event = field(default_factory=threading.Event, repr=False)
    client_gone: bool = False
    gate_released: bool | None = None

    @property
    def route(self) -> str:
        return self.path.split("?")[0]

    @property
    def protocol(self) -> str:
        route = self.route
        if route.endswith("/messages") or route.endswith("/messages/count_tokens"):
            return "anthropic"
        return "openai_responses" if route.endswith("/responses") else "openai_chat"

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("stream") is True


# -- shaping ------------------------------------------------------------------------------------


def _arguments_json(call: dict) -> str:
    args = call.get("arguments", {})
    return args if isinstance(args, str) else json.dumps(args)


def _arguments_dict(call: dict) -> dict:
    args = call.get("arguments", {})
    if isinstance(args, str):
        try:
            return json.loads(args)
        except ValueError:
            return {"_unparsed": args}
    return args


def _call_id(call: dict, i: int, prefix: str) -> str:
    return call.get("id") or f"{prefix}{i + 1:04d}fake"


def _openai_body(reply: Reply, model: str, n: int) -> dict:
    message: dict = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["content"] = reply.text or None
        message["tool_calls"] = [
            {"id": _call_id(c, i, "call_"), "type": "function",
             "function": {"name": c["name"], "arguments": _arguments_json(c)}}
            for i, c in enumerate(reply.tool_calls)
        ]
    return {
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": reply.tokens_in,
            "completion_tokens": reply.tokens_out,
            "total_tokens": reply.tokens_in + reply.tokens_out,
        },
    }


def _anthropic_content(reply: Reply) -> list[dict]:
    blocks: list[dict] = [{"type": "text", "text": reply.text}] if reply.text or not reply.tool_calls else []
    for i, c in enumerate(reply.tool_calls):
        blocks.append({"type": "tool_use", "id": _call_id(c, i, "toolu_"), "name": c["name"],
                       "input": _arguments_dict(c)})
    return blocks


def _anthropic_body(reply: Reply, model: str, n: int) -> dict:
    return {
        "id": f"msg_fake_{n}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _anthropic_content(reply),
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": reply.tokens_in, "output_tokens": reply.tokens_out},
    }


def _responses_items(reply: Reply, n: int) -> list[dict]:
    items: list[dict] = []
    if reply.text or not reply.tool_calls:
        items.append({
            "id": f"msg_fake_{n}", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
        })
    for i, c in enumerate(reply.tool_calls):
        items.append({
            "id": f"fc_fake_{n}_{i}", "type": "function_call", "status": "completed",
            "call_id": _call_id(c, i, "call_"), "name": c["name"], "arguments": _arguments_json(c),
        })
    return items


def _responses_body(reply: Reply, model: str, n: int, status: str = "completed", output=None, usage=True) -> dict:
    return {
        "id": f"resp_fake_{n}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": _responses_items(reply, n) if output is None else output,
        "parallel_tool_calls": True,
        "usage": {
            "input_tokens": reply.tokens_in,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": reply.tokens_out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": reply.tokens_in + reply.tokens_out,
        } if usage else None,
    }


def _error_body(protocol: str, status: int, message: str) -> dict:
    kind = {429: "rate_limit_error", 401: "authentication_error", 400: "invalid_request_error"}.get(status, "api_error")
    if protocol == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "code": None}}


SHAPERS = {"openai_chat": _openai_body, "anthropic": _anthropic_body, "openai_responses": _responses_body}


# -- streams: each function returns the SSE events, one bytes object per event ------------------


def _words(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def _fragments(s: str) -> list[str]:
    return [s[i:i + ARGUMENT_FRAGMENT] for i in range(0, len(s), ARGUMENT_FRAGMENT)]


def _sse(data: dict | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "").encode() + f"data: {payload}\n\n".encode()


def _openai_stream(reply: Reply, model: str, n: int, body: dict) -> list[bytes]:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    created = int(time.time())

    def chunk(delta: dict, finish=None, choices=True) -> bytes:
        data = {"id": f"chatcmpl-fake-{n}", "object": "chat.completion.chunk", "created": created,
                "model": model, "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else []}
        if include_usage:
            data["usage"] = None
        return _sse(data)

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": w}) for w in _words(reply.text)]
    for i, c in enumerate(reply.tool_calls):
        events.append(chunk({"tool_calls": [{"index": i, "id": _call_id(c, i, "call_"), "type": "function",
                                             "function": {"name": c["name"], "arguments": ""}}]}))
        events += [chunk({"tool_calls": [{"index": i, "function": {"arguments": f}}]})
                   for f in _fragments(_arguments_json(c))]
    events.append(chunk({}, finish="tool_calls" if reply.tool_calls else "stop"))
    if include_usage:
        last = json.loads(chunk({}, choices=False)[len(b"data: "):])
        last["usage"] = {"prompt_tokens": reply.tokens_in, "completion_tokens": reply.tokens_out,
                         "total_tokens": reply.tokens_in + reply.tokens_out}
        events.append(_sse(last))
    events.append(_sse("[DONE]"))
    return events


def _anthropic_stream(reply: Reply, model: str, n: int, body: dict) -> list[bytes]:
    start = _anthropic_body(reply, model, n)
    start.update(content=[], stop_reason=None, usage={"input_tokens": reply.tokens_in, "output_tokens": 1})
    events = [_sse({"type": "message_start", "message": start}, "message_start")]
    for index, block in enumerate(_anthropic_content(reply)):
        if block["type"] == "text":
            opening, deltas = {"type": "text", "text": ""}, [
                {"type": "text_delta", "text": w} for w in _words(block["text"])]
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": ""}] + [
                {"type": "input_json_delta", "partial_json": f} for f in _fragments(json.dumps(block["input"]))]
        events.append(_sse({"type": "content_block_start", "index": index, "content_block": opening},
                           "content_block_start"))
        if index == 0:
            events.append(_sse({"type": "ping"}, "ping"))
        events += [_sse({"type": "content_block_delta", "index": index, "delta": d}, "content_block_delta")
                   for d in deltas]
        events.append(_sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    events.append(_sse({"type": "message_delta",
                        "delta": {"stop_reason": "tool_use" if reply.tool_calls else "end_turn", "stop_sequence": None},
                        "usage": {"output_tokens": reply.tokens_out}}, "message_delta"))
    events.append(_sse({"type": "message_stop"}, "message_stop"))
    return events


def _responses_stream(reply: Reply, model: str, n: int, body: dict) -> list[bytes]:
    seq = iter(range(1_000_000))

    def ev(kind: str, **data) -> bytes:
        return _sse({"type": kind, "sequence_number": next(seq), **data}, kind)

    events = [
        ev("response.created", response=_responses_body(reply, model, n, "in_progress", output=[], usage=False)),
        ev("response.in_progress", response=_responses_body(reply, model, n, "in_progress", output=[], usage=False)),
    ]
    for index, item in enumerate(_responses_items(reply, n)):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            events.append(ev("response.output_item.added", output_index=index,
                             item={**item, "status": "in_progress", "content": []}))
            part = {"type": "output_text", "text": "", "annotations": []}
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            events.append(ev("response.content_part.added", **where, part=part))
            events += [ev("response.output_text.delta", **where, delta=w, logprobs=[]) for w in _words(text)]
            events.append(ev("response.output_text.done", **where, text=text, logprobs=[]))
            events.append(ev("response.content_part.done", **where, part={**part, "text": text}))
        else:
            events.append(ev("response.output_item.added", output_index=index,
                             item={**item, "status": "in_progress", "arguments": ""}))
            where = {"item_id": item["id"], "output_index": index}
            events += [ev("response.function_call_arguments.delta", **where, delta=f)
                       for f in _fragments(item["arguments"])]
            events.append(ev("response.function_call_arguments.done", **where, arguments=item["arguments"]))
        events.append(ev("response.output_item.done", output_index=index, item=item))
    events.append(ev("response.completed", response=_responses_body(reply, model, n)))
    return events


STREAMERS = {"openai_chat": _openai_stream, "anthropic": _anthropic_stream, "openai_responses": _responses_stream}


# -- the server ---------------------------------------------------------------------------------


class FakeUpstream:
    """A threaded HTTP server with a queue of scripted replies; ``url`` is its root."""

    def __init__(self):
        self._lock = threading.Lock()
        self._replies: deque = deque()
        self.requests: list[Recorded] = []
        self.fallback: Script | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ----------------------------------------------------------------------------

    def script(self, *replies: Script) -> "FakeUpstream":
        with self._lock:
            self._replies.extend(replies)
        return self

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._replies)

    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self.requests.append(recorded)

    def _next(self, recorded: Recorded) -> Reply | None:
        with self._lock:
            self.requests.append(recorded)
            entry = self._replies.popleft() if self._replies else self.fallback
        if callable(entry) and not isinstance(entry, Reply):
            entry = entry(recorded)
        if entry is None:
            return None
        return entry if isinstance(entry, Reply) else Reply(text=entry)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeUpstream is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeUpstream":
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                recorded = Recorded(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, raw, body
                )
                route = recorded.route
                if route not in ROUTES:
                    upstream._record(recorded)
                    return self._send(404, _error_body(recorded.protocol, 404, f"no route {route}"), recorded)
                if route.endswith("/count_tokens"):
                    upstream._record(recorded)
                    return self._send(200, {"input_tokens": max(1, len(raw) // 4)}, recorded)
                reply = upstream._next(recorded)
                if reply is None:
                    return self._send(
                        500, _error_body(recorded.protocol, 500, "fake upstream: no scripted reply left"), recorded
                    )
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.raw is not None:
                    return self._send_bytes(reply.status, reply.raw, reply.content_type, reply.headers, recorded)
                if reply.status >= 400:
                    error = _error_body(recorded.protocol, reply.status, reply.text)
                    return self._send(reply.status, error, recorded, reply.headers)
                model = body.get("model", "fake-model") if isinstance(body, dict) else "fake-model"
                n = len(upstream.requests)
                if recorded.stream:
                    events = STREAMERS[recorded.protocol](reply, model, n, body)
                    return self._stream(reply, events, recorded)
                shaped = SHAPERS[recorded.protocol](reply, model, n)
                return self._send(reply.status, shaped, recorded, reply.headers)

            def do_GET(self):
                recorded = Recorded("GET", self.path, {k.lower(): v for k, v in self.headers.items()}, b"", None)
                upstream._record(recorded)
                self._send(404, {"error": {"message": "not found"}}, recorded)

            def _send(self, status: int, payload: dict, recorded: Recorded, headers: dict | None = None):
                self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers or {}, recorded)

            def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict, recorded: Recorded):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    # Noted before writing: the client may look as soon as the bytes arrive.
                    recorded.chunks_sent, recorded.sent = 1, data
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    recorded.client_gone = True
                finally:
                    recorded.done.set()

            def _stream(self, reply: Reply, events: list[bytes], recorded: Recorded):
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "text/event-stream; charset=utf-8")
                    self.send_header("Cache-Control", "no-cache")
                    self.send_header("Transfer-Encoding", "chunked")
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    for i, event in enumerate(events):
                        if reply.cut_after is not None and i >= reply.cut_after:
                            # Die mid-stream: no terminating chunk, just a closed socket.
                            self.close_connection = True
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        if i == 1 and reply.gate is not None:
                            recorded.gate_released = reply.gate.wait(GATE_TIMEOUT_S)
                        if i and reply.chunk_delay_s:
                            time.sleep(reply.chunk_delay_s)
                        recorded.chunks_sent = i + 1
                        recorded.sent += event
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError, OSError):
                    recorded.client_gone = True
                    self.close_connection = True
                finally:
                    recorded.done.set()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="fake-upstream", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> "FakeUpstream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture
def fake_upstream():
    """A started ``FakeUpstream`` (stopped after the test)."""
    with FakeUpstream() as upstream:
        yield upstream
