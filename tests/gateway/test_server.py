"""Ways to run the gateway: a background server on a TCP port or a unix socket (what a
network-less sandbox gets), ``gateway_url()``, ``manage.py gateway`` and the combined ASGI app."""
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from episodes.solving.gateway.server import gateway_url, serve_in_background
from tests.llm.fake_upstream import Reply

from .conftest import wait_for_calls

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def test_unix_socket_server_serves_and_records(make_episode, upstream, tmp_path):
    episode, token = make_episode("anthropic")
    upstream.script(Reply("over the socket", tokens_in=3, tokens_out=4))
    path = str(tmp_path / "gw.sock")
    with serve_in_background(uds=path) as where:
        assert where == path
        assert stat.S_ISSOCK(os.stat(path).st_mode) and os.stat(path).st_mode & 0o777 == 0o666
        with httpx.Client(transport=httpx.HTTPTransport(uds=path), base_url="http://gateway") as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            answer = client.post("/v1/messages", json=BODY, headers={"x-api-key": token})
    assert answer.json()["content"][0]["text"] == "over the socket"
    assert not os.path.exists(path)  # removed on exit
    [row] = wait_for_calls(episode, 1)
    assert (row.tokens_in, row.tokens_out) == (3, 4)


def test_gateway_url_prefers_the_configured_service(settings, make_episode):
    settings.BUGFORGE_GATEWAY_URL = "http://gateway.internal:8001/"
    with gateway_url() as base:
        assert base == "http://gateway.internal:8001"


def test_gateway_url_serves_its_own_gateway_for_the_block(settings, make_episode, upstream):
    settings.BUGFORGE_GATEWAY_URL = ""
    episode, token = make_episode("openai_chat")
    upstream.script("private gateway")
    with gateway_url() as base:
        assert httpx.get(base + "/healthz").status_code == 200
        answer = httpx.post(base + "/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {token}"})
    assert answer.json()["choices"][0]["message"]["content"] == "private gateway"
    # Leaving the block waits for calls in flight to be recorded, then stops the server.
    assert episode.llm_calls.count() == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(base + "/healthz")


def test_combined_asgi_app_routes_the_gateway_and_the_site(make_episode, upstream):
    from bugforge_web.asgi import application

    episode, token = make_episode("anthropic")
    upstream.script("through the combined app")
    with serve_in_background(app=application) as base:
        answer = httpx.post(f"{base}/t/{token}/v1/messages", json=BODY)
        site = httpx.get(base + "/accounts/login/")
        anonymous = httpx.get(base + "/")
    assert answer.json()["content"][0]["text"] == "through the combined app"
    assert site.status_code == 200 and "csrfmiddlewaretoken" in site.text  # Django answered
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous.headers["location"]
    wait_for_calls(episode, 1)


def test_manage_py_gateway_serves_on_a_unix_socket(tmp_path, make_episode, upstream, settings):
    episode, token = make_episode("anthropic")
    upstream.script("from the command")
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    if db["ENGINE"].endswith("postgresql"):  # the subprocess must use the test database
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    path = tmp_path / "cmd.sock"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, str(root / "manage.py"), "gateway", "--uds", str(path)], cwd=root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path), retries=3), base_url="http://gw") as client:
            for _ in range(100):
                try:
                    health = client.get("/healthz")
                    break
                except httpx.ConnectError:
                    time.sleep(0.05)
            assert health.json() == {"status": "ok"}
            assert client.post("/v1/messages", json=BODY, headers={"x-api-key": "bfgw_nope"}).status_code == 401
            answer = client.post("/v1/messages", json=BODY, headers={"x-api-key": token})
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0].decode()
    assert answer.json()["content"][0]["text"] == "from the command", output
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught (as process managers expect).
    assert proc.returncode in (0, -15) and "Application shutdown complete" in output, output
    wait_for_calls(episode, 1)
    assert token not in output and "bfgw_nope" not in output


def test_start_failure_is_reported(make_episode):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(OSError):
            with serve_in_background(port=taken.getsockname()[1]):
                pass
    finally:
        taken.close()
