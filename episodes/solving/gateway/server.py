"""Running the gateway: the Django-backed app, a background server for jobs and tests, and the
URL a solve job should hand its agent.

    with gateway_url() as base:            # settings.BUGFORGE_GATEWAY_URL, or a private server
        env["ANTHROPIC_BASE_URL"] = base   # root URL; OpenAI-style clients want base + "/v1"

    with serve_in_background(uds="/run/x/gw.sock") as sock:   # for a network-less sandbox
        ...                                # HTTP over that unix socket (mode 0666)
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Iterator

from django.conf import settings

from episodes.solving.gateway.core import GatewayApp
from episodes.solving.gateway.store import DjangoStore

START_TIMEOUT_S = 15


def build_app(store: DjangoStore | None = None) -> GatewayApp:
    """The gateway over the Django ORM, configured from settings."""
    store = store or DjangoStore(threads=getattr(settings, "BUGFORGE_GATEWAY_DB_THREADS", 4),
                                 token_cache_s=getattr(settings, "BUGFORGE_GATEWAY_TOKEN_CACHE_S", 2.0))
    return GatewayApp(
        store.resolve, store.record,
        timeout_s=getattr(settings, "BUGFORGE_GATEWAY_TIMEOUT_S", 600),
        raw_stream_max_bytes=getattr(settings, "BUGFORGE_GATEWAY_RAW_STREAM_MAX_BYTES", 4 * 1024 * 1024),
        on_shutdown=store.close,
    )


def uvicorn_config(app, **kw):
    import uvicorn

    kw.setdefault("log_level", "warning")
    return uvicorn.Config(
        app, lifespan="on", access_log=False, server_header=False, timeout_graceful_shutdown=10,
        timeout_keep_alive=75, **kw,
    )


def _listen(host: str, port: int, uds: str | None) -> socket.socket:
    if uds:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(uds)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        if uds:
            sock.bind(uds)
            # The sandboxed agent runs under another uid: it must be able to connect.
            os.chmod(uds, 0o666)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def serve_in_background(host: str = "127.0.0.1", port: int = 0, uds: str | None = None,
                        app=None) -> Iterator[str]:
    """Run the gateway (uvicorn) in a thread for the block's duration. Yields its base URL
    (``http://127.0.0.1:<port>``, port 0 = any free one) or, with ``uds``, the socket path.
    On exit, calls in flight finish (up to 10 s) and are recorded before it returns."""
    import uvicorn

    sock = _listen(host, port, uds)
    server = uvicorn.Server(uvicorn_config(app or build_app()))
    failure: list[BaseException] = []

    def run():
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surfaced to the caller below
            failure.append(exc)

    thread = threading.Thread(target=run, name="bugforge-gateway", daemon=True)
    thread.start()
    try:
        waited = 0.0
        while not server.started:
            if failure or not thread.is_alive():
                raise RuntimeError(f"the gateway did not start: {failure[0] if failure else 'server exited'}")
            if waited > START_TIMEOUT_S:
                raise RuntimeError("the gateway did not start in time")
            thread.join(0.01)
            waited += 0.01
        if uds:
            yield uds
        else:
            bound_host, bound_port = sock.getsockname()[:2]
            yield f"http://{'[' + bound_host + ']' if ':' in bound_host else bound_host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        if uds:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(uds)


@contextlib.contextmanager
def gateway_url() -> Iterator[str]:
    """``settings.BUGFORGE_GATEWAY_URL`` when a gateway service is configured, else a private
    gateway served in the background for the block's duration. Yields a root URL (no /v1)."""
    configured = getattr(settings, "BUGFORGE_GATEWAY_URL", "")
    if configured:
        yield configured.rstrip("/")
        return
    with serve_in_background() as base:
        yield base
