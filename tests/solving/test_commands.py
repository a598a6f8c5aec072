"""The endpoint and teacher commands: keys only from the environment or stdin, never printed;
connection tests against a real local server; teachers with provenance and limits."""
import io

import pytest
from django.core.management import CommandError, call_command

from episodes.models import AuditEvent, LLMEndpoint, Teacher

from tests.llm.fake_upstream import FakeUpstream, Reply

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

KEY = "sk-from-env-abcdef123456"


def run(*args, stdin: str = "") -> str:
    out = io.StringIO()
    import sys

    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        call_command(*args, stdout=out, stderr=io.StringIO())
    finally:
        sys.stdin = old
    return out.getvalue()


def test_endpoint_add_list_test_never_print_the_key(monkeypatch):
    monkeypatch.setenv("MY_KEY", KEY)
    with FakeUpstream() as up:
        up.script("OK", Reply.error(401, "bad key"))
        out = run("endpoint", "add", "local", "--protocol", "openai_chat", "--base-url", up.url, "--model", "m",
                  "--api-key-env", "MY_KEY", "--usd-per-mtok-in", "1")
        assert "added endpoint local" in out and "key set" in out
        assert LLMEndpoint.objects.get(name="local").api_key == KEY
        listing = run("endpoint", "list")
        tested = run("endpoint", "test", "local")
        with pytest.raises(CommandError, match="FAILED — HTTP 401: bad key"):
            run("endpoint", "test", "local")
    assert "local\topenai_chat" in listing and "key set" in listing
    assert "OK — HTTP 200" in tested
    assert up.requests[0].headers["authorization"] == f"Bearer {KEY}"
    for text in (out, listing, tested, str(list(AuditEvent.objects.values("before", "after")))):
        assert KEY not in text
    # a key from stdin replaces it; the other fields are kept
    run("endpoint", "add", "local", "--update", "--api-key-stdin", stdin="sk-stdin-key-777\n")
    endpoint = LLMEndpoint.objects.get(name="local")
    assert endpoint.api_key == "sk-stdin-key-777" and endpoint.model == "m"


def test_endpoint_add_errors_are_clear(monkeypatch):
    with pytest.raises(CommandError, match="needs --protocol, --base-url and --model"):
        run("endpoint", "add", "x", "--protocol", "anthropic")
    with pytest.raises(CommandError, match="NOPE is not set"):
        run("endpoint", "add", "x", "--protocol", "anthropic", "--base-url", "http://localhost:9", "--model", "m",
            "--api-key-env", "NOPE")
    with pytest.raises(CommandError, match="base_url: Enter a valid URL"):
        run("endpoint", "add", "x", "--protocol", "anthropic", "--base-url", "not a url", "--model", "m")
    run("endpoint", "add", "x", "--protocol", "anthropic", "--base-url", "http://localhost:9", "--model", "m")
    with pytest.raises(CommandError, match="pass --update"):
        run("endpoint", "add", "x", "--protocol", "anthropic", "--base-url", "http://localhost:9", "--model", "m")


def test_teacher_add_and_list():
    LLMEndpoint.objects.create(name="claude", protocol="anthropic", base_url="http://localhost:9", model="claude-x")
    out = run("teacher", "add", "sonnet", "--endpoint", "claude", "--provider", "anthropic",
              "--terms-allow-training", "no", "--max-steps", "12", "--max-cost-usd", "0.5")
    teacher = Teacher.objects.get(name="sonnet")
    assert teacher.terms_allow_training is False and teacher.model == "claude-x" and teacher.harness == "builtin"
    assert teacher.config == {"max_steps": 12, "max_cost_usd": 0.5}
    assert "forbids training" in out
    listing = run("teacher", "list")
    assert "sonnet\tbuiltin\tclaude\tclaude-x\tforbids training\t0 episodes, solve rate n/a" in listing
    with pytest.raises(CommandError, match="Codex CLI needs an endpoint speaking openai_responses"):
        run("teacher", "add", "cx", "--endpoint", "claude", "--harness", "codex")
    with pytest.raises(CommandError, match="no endpoint named 'nope'"):
        run("teacher", "add", "t2", "--endpoint", "nope")


def test_teacher_set_changes_provenance_and_limits():
    Teacher.objects.create(name="imp", harness="imported")
    out = run("teacher", "set", "imp", "--terms-allow-training", "yes", "--provider", "anthropic", "--max-steps", "5")
    teacher = Teacher.objects.get(name="imp")
    assert teacher.terms_allow_training is True and teacher.provider == "anthropic" and teacher.config == {"max_steps": 5}
    assert "allows training" in out
    assert AuditEvent.objects.get(action="change_teacher").before["terms_allow_training"] is None
