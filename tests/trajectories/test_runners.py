"""The teacher CLIs for real: Claude Code and Codex (installed by ``npm ci --prefix agents``)
run in the real sandbox, reach the real recording gateway through its unix socket, and the
gateway forwards to the scripted upstream. The gateway's LLMCall rows then give a valid
canonical trajectory holding the CLI's tool calls and their results."""
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from episodes.engine.trajectories.importers import import_text
from episodes.engine.solve.runners import cli_path, missing_cli_message, run_external_agent
from episodes.engine.sandbox import Limits, Mount
from episodes.engine.sandbox.local import LocalExecutor
from episodes.engine.trajectories.canonical import canonical_from_calls, check_canonical
from tests.llm.fake_upstream import FakeUpstream
from tests.trajectories.relay import unix_relay
from tests.trajectories.scenario import FIXED_LINE, TASK, ScriptedAgentModel, make_workspace, steps

CLI_LIMITS = Limits(timeout_s=180, memory_mb=4096, pids=512)
KEY = "sk-real-upstream-KEY-4242"
SETUP = {
    "claude_code": {"protocol": "anthropic", "model": "claude-sonnet-4-5", "tools": ["Read", "Edit", "Bash"]},
    "codex": {"protocol": "openai_responses", "model": "gpt-5-codex", "tools": ["exec_command"] * 3},
}


@pytest.fixture
def scratch(work_dir):
    base = Path(tempfile.mkdtemp(prefix="runner-", dir=work_dir))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def wait_for_calls(episode, at_least: int, timeout_s: float = 15):
    from episodes.models import LLMCall

    deadline = time.monotonic() + timeout_s
    while True:
        rows = list(LLMCall.objects.filter(episode=episode).order_by("sequence"))
        if len(rows) >= at_least or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


@pytest.mark.parametrize("harness", ["claude_code", "codex"])
def test_real_cli_fixes_the_scenario_through_the_gateway(harness, transactional_db, scratch):
    if cli_path(harness) is None:
        pytest.skip(missing_cli_message(harness))
    from episodes.solving.gateway.server import serve_in_background
    from episodes.models import Bug, Episode, LLMEndpoint, Repository, Teacher

    setup = SETUP[harness]
    workspace = make_workspace(scratch / "workspace")
    with FakeUpstream() as upstream:
        model = ScriptedAgentModel(steps(harness, workspace))
        upstream.fallback = model
        repo = Repository.objects.create(name="shop", source="/nowhere", pinned_commit="a" * 40)
        bug = Bug.objects.create(repository=repo, base_commit="a" * 40, patch="p", verifier="v")
        endpoint = LLMEndpoint.objects.create(name="up", protocol=setup["protocol"], base_url=upstream.url,
                                              model=setup["model"], api_key=KEY)
        teacher = Teacher.objects.create(name=harness.replace("_", "-"), harness=harness, endpoint=endpoint, model=setup["model"])
        episode = Episode.objects.create(bug=bug, teacher=teacher, status="running")
        token = episode.issue_gateway_token()
        with serve_in_background(uds=str(scratch / "gateway.sock")) as sock:
            run = run_external_agent(harness, executor=LocalExecutor(scratch / "cache"), workspace=workspace, task=TASK,
                                     gateway=Path(sock), token=token, model=setup["model"], limits=CLI_LIMITS)
        # the CLI ran to the end, inside the sandbox, and really changed the workspace
        assert run.error == "", f"{run.error}\n{run.stderr_tail}"
        assert run.exit_reason == "finished"
        assert model.served == 4, f"the CLI made {model.served} agent calls"
        assert FIXED_LINE in (workspace / "pricing.py").read_text()
        assert "test passes" in run.summary["final_message"]
        kinds = {e.get("type") for e in run.events}
        assert ({"system", "assistant", "user", "result"} if harness == "claude_code"
                else {"thread.started", "item.completed", "turn.completed"}) <= kinds
        assert run.session_log  # the CLI's own log came back out of the sandbox
        # the upstream saw the real key, never the episode token; the CLI only ever had the token
        assert all(KEY in (r.headers.get("authorization", "") + r.headers.get("x-api-key", "")) for r in upstream.requests
                   if r.method == "POST")

    rows = wait_for_calls(episode, at_least=4 + model.side_calls)
    assert len(rows) >= 4
    assert all(r.protocol == setup["protocol"] and r.status_code == 200 for r in rows)
    assert any(r.streamed for r in rows) and sum(r.tokens_in for r in rows) > 0
    traj = canonical_from_calls([
        {"protocol": r.protocol, "path": r.path, "request": r.request, "response": r.response,
         "status_code": r.status_code, "error": r.error} for r in rows])
    assert check_canonical(traj) == []
    called = [c["function"]["name"] for m in traj["messages"] for c in m.get("tool_calls") or ()]
    assert called == setup["tools"]
    results = [m["content"] for m in traj["messages"] if m["role"] == "tool"]
    assert len(results) == 3 and "2 checks passed" in results[-1]  # the test ran in the sandbox
    assert traj["messages"][-1] == {"role": "assistant", "content": "Fixed: `discounted()` now subtracts the percentage; the test passes."}
    assert {t["function"]["name"] for t in traj["tools"]} >= set(setup["tools"])

    # the importer, reading the CLI's own log of the same run, gives the trajectory the gateway
    # recorded: the same messages (system reminders where the CLI put them on the wire)
    imported = import_text(harness, run.session_log).trajectory
    assert imported["messages"] == traj["messages"]
    if harness == "claude_code":  # its log records the request's shape: the same tool schemas
        assert imported["tools"] == traj["tools"] and check_canonical(imported) == []


def test_claude_code_turn_limit_is_a_step_limit_not_an_error(scratch):
    """With --max-turns 1 and a model that keeps calling tools, Claude Code stops after one
    turn: the run reports a step limit (the episode is still graded), not a failure."""
    if cli_path("claude_code") is None:
        pytest.skip(missing_cli_message("claude_code"))
    from tests.llm.fake_upstream import Reply

    workspace = make_workspace(scratch / "workspace")
    with FakeUpstream() as upstream:
        upstream.fallback = lambda recorded: Reply(tool_calls=[{"name": "Bash", "arguments": {"command": "ls", "description": "look"}}])
        host, port = upstream.url.removeprefix("http://").rsplit(":", 1)
        with unix_relay(scratch / "gw.sock", host, int(port)) as sock:
            run = run_external_agent("claude_code", executor=LocalExecutor(scratch / "cache"), workspace=workspace, task=TASK,
                                     gateway=sock, token="t", model="claude-sonnet-4-5", limits=CLI_LIMITS, max_turns=1)
    assert (run.error, run.exit_reason) == ("", "step_limit"), run.stderr_tail
    assert run.summary["stop"] == "error_max_turns"


def test_missing_cli_is_a_clear_error(scratch):
    run = run_external_agent("codex", executor=LocalExecutor(scratch / "cache"), workspace=make_workspace(scratch / "w"),
                             task="x", gateway=scratch / "none.sock", token="t", model="m", agents_dir=scratch / "no-agents")
    assert run.error == "Codex CLI not installed: run `npm ci --prefix agents` (needs node and npm)"
    assert run.exit_reason == "error"
    assert run.events == [] and run.exit_code is None


def test_a_backend_that_cannot_mount_is_a_clear_error(scratch):
    if cli_path("codex") is None:
        pytest.skip(missing_cli_message("codex"))

    class NoMounts:  # the executor interface without the optional mounts (e.g. the docker backend)
        name = "docker"

        def run(self, argv, workdir, *, environment=None, env=None, limits=Limits()):
            raise AssertionError("must not be called")

    run = run_external_agent("codex", executor=NoMounts(), workspace=make_workspace(scratch / "w"), task="x",
                             gateway=scratch / "none.sock", token="t", model="m")
    assert run.error == "the docker sandbox backend cannot mount the teacher CLIs; run Codex CLI teachers with BUGFORGE_SANDBOX=local"


def test_missing_gateway_socket_is_a_clear_error(scratch):
    if cli_path("claude_code") is None:
        pytest.skip(missing_cli_message("claude_code"))
    run = run_external_agent("claude_code", executor=LocalExecutor(scratch / "cache"), workspace=make_workspace(scratch / "w"),
                             task="x", gateway=scratch / "none.sock", token="t", model="m")
    assert "gateway socket" in run.error and "does not exist" in run.error


def test_sandbox_mounts_are_read_only_unless_writable(scratch):
    executor = LocalExecutor(scratch / "cache")
    ro, rw, work = scratch / "ro", scratch / "rw", scratch / "work"
    for d in (ro, rw, work):
        d.mkdir()
        d.chmod(0o777)
    (ro / "data.txt").write_text("shared")
    script = ("import pathlib\n"
              "print(pathlib.Path('/opt/x/data.txt').read_text())\n"
              "for p in ('/opt/x/new.txt', '/opt/y/new.txt'):\n"
              "    try:\n        pathlib.Path(p).write_text('w'); print('wrote', p)\n"
              "    except OSError as e:\n        print('refused', p, e.errno)\n")
    result = executor.run(["python3", "-c", script], work, limits=Limits(timeout_s=30),
                          mounts=[Mount(ro, "/opt/x"), Mount(rw, "/opt/y", writable=True)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["shared", "refused /opt/x/new.txt 30", "wrote /opt/y/new.txt"]
    assert (rw / "new.txt").read_text() == "w" and not (ro / "new.txt").exists()
