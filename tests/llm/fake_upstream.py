"""A scripted model server on 127.0.0.1 for tests: real HTTP, both wire protocols.

    with FakeUpstream() as up:                    # or the ``fake_upstream`` fixture
        up.script("first reply", Reply.error(500), Reply.garbage(b"<html>"), "third reply")
        client = LLMClient(EndpointConfig("openai_chat", up.url, "m", api_key="sk-..."))
        ...
        up.requests[0].body["messages"], up.requests[0].headers["authorization"]

* ``POST /v1/chat/completions`` answers in OpenAI Chat Completions shape (non-streaming),
  ``POST /v1/messages`` (query string allowed) in Anthropic Messages shape. The same script
  serves both: each request takes the next scripted reply and is shaped for the path it hit.
* A plain string is a successful text reply; ``Reply(...)`` sets usage, an HTTP error status,
  a raw (garbage) body or a delay. When the script runs out the server answers 500.
* Every request is recorded (method, path, lower-cased headers, raw bytes, parsed JSON body).

Other test modules can import ``FakeUpstream``/``Reply`` or the ``fake_upstream`` fixture
(``from tests.llm.fake_upstream import fake_upstream``).
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


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

    @classmethod
    def error(cls, status: int = 500, message: str = "upstream exploded", **kw) -> "Reply":
        return cls(status=status, raw=None, text=message, **kw)

    @classmethod
    def garbage(cls, body: bytes = b"<html>502 Bad Gateway</html>", status: int = 200) -> "Reply":
        return cls(status=status, raw=body, content_type="text/html")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    raw: bytes
    body: dict | None

    @property
    def protocol(self) -> str:
        return "anthropic" if self.path.split("?")[0].endswith("/messages") else "openai_chat"


def _openai_body(reply: Reply, model: str, n: int) -> dict:
    return {
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": reply.tokens_in,
            "completion_tokens": reply.tokens_out,
            "total_tokens": reply.tokens_in + reply.tokens_out,
        },
    }


def _anthropic_body(reply: Reply, model: str, n: int) -> dict:
    return {
        "id": f"msg_fake_{n}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": reply.text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": reply.tokens_in, "output_tokens": reply.tokens_out},
    }


def _error_body(protocol: str, status: int, message: str) -> dict:
    kind = {429: "rate_limit_error", 401: "authentication_error", 400: "invalid_request_error"}.get(status, "api_error")
    if protocol == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "code": None}}


class FakeUpstream:
    """A threaded HTTP server with a queue of scripted replies; ``url`` is its root."""

    def __init__(self):
        self._lock = threading.Lock()
        self._replies: deque = deque()
        self.requests: list[Recorded] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ----------------------------------------------------------------------------

    def script(self, *replies: str | Reply) -> "FakeUpstream":
        with self._lock:
            for r in replies:
                self._replies.append(r if isinstance(r, Reply) else Reply(text=r))
        return self

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._replies)

    def _next(self, recorded: Recorded) -> Reply | None:
        with self._lock:
            self.requests.append(recorded)
            return self._replies.popleft() if self._replies else None

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
                route = self.path.split("?")[0]
                if route not in ("/v1/chat/completions", "/v1/messages"):
                    with upstream._lock:
                        upstream.requests.append(recorded)
                    return self._send(404, _error_body(recorded.protocol, 404, f"no route {route}"))
                reply = upstream._next(recorded)
                if reply is None:
                    return self._send(500, _error_body(recorded.protocol, 500, "fake upstream: no scripted reply left"))
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.raw is not None:
                    return self._send_bytes(reply.status, reply.raw, reply.content_type, reply.headers)
                if reply.status >= 400:
                    error = _error_body(recorded.protocol, reply.status, reply.text)
                    return self._send(reply.status, error, reply.headers)
                model = (body or {}).get("model", "fake-model") if isinstance(body, dict) else "fake-model"
                n = len(upstream.requests)
                shaped = (_anthropic_body if recorded.protocol == "anthropic" else _openai_body)(reply, model, n)
                return self._send(reply.status, shaped, reply.headers)

            def do_GET(self):
                with upstream._lock:
                    upstream.requests.append(
                        Recorded("GET", self.path, {k.lower(): v for k, v in self.headers.items()}, b"", None)
                    )
                self._send(404, {"error": {"message": "not found"}})

            def _send(self, status: int, payload: dict, headers: dict | None = None):
                self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers or {})

            def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

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
