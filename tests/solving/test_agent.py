"""The built-in agent against a local scripted model server (both wire protocols): it fixes the
sample repository's bug through real tool calls in the real sandbox and earns reward True; a
wrong fix earns False; limits, malformed calls and upstream errors end or steer the loop."""
import json

import pytest

from episodes.engine.solve.agent.loop import AgentLimits, run_agent, to_anthropic
from episodes.engine.solve.agent.tools import TOOL_SCHEMAS, Workbench
from episodes.engine.llm import EndpointConfig
from episodes.engine.sandbox.base import Limits

from tests.llm.fake_upstream import FakeUpstream, Reply

PROTOCOLS = ["openai_chat", "anthropic"]


def call(call_id, name, **arguments):
    return {"id": call_id, "name": name, "arguments": arguments}


def last_tool_result(recorded) -> str:
    """The text of the newest tool result in a request, whichever protocol it is in."""
    messages = recorded.body["messages"]
    if recorded.protocol == "anthropic":
        blocks = [b for b in messages[-1]["content"] if b.get("type") == "tool_result"]
        return blocks[-1]["content"]
    return [m for m in messages if m["role"] == "tool"][-1]["content"]


def fixing_script(sample, replacement: str):
    """view the buggy file, edit the line it shows, run the tests, submit — each step reacting
    to what the agent's tools returned."""

    def edit(recorded):
        shown = last_tool_result(recorded)
        assert sample.new in shown, shown[:500]  # the view showed the buggy line
        line = next(line for line in shown.splitlines() if sample.new in line)
        old = line.split("\t", 1)[1]  # drop the line number column
        return Reply(tool_calls=[call("c2", "edit", path=sample.path, old=old, new=old.replace(sample.new, replacement))],
                     tokens_in=900, tokens_out=60)

    def run_tests(recorded):
        assert last_tool_result(recorded).startswith("edited " + sample.path)
        return Reply(text="Let me run the tests.",
                     tool_calls=[call("c3", "shell", command="python -m pytest -q -p no:cacheprovider tests/test_shipping.py")])

    def submit(recorded):
        return Reply(tool_calls=[call("c4", "submit")], tokens_in=1500, tokens_out=10)

    return [Reply(tool_calls=[call("c1", "view", path=sample.path, start_line=50, end_line=70)], tokens_in=700, tokens_out=40),
            edit, run_tests, submit]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_agent_fixes_the_bug_and_earns_reward_true(engine_bug, protocol):
    sample = engine_bug.sample
    with FakeUpstream() as up, engine_bug.checkout() as ws:
        up.script(*fixing_script(sample, sample.old))
        endpoint = EndpointConfig(protocol, up.url, "fake-model", api_key="sk-upstream-secret",
                                  usd_per_mtok_in=3, usd_per_mtok_out=15)
        bench = Workbench(engine_bug.executor, ws, Limits(timeout_s=60), environment=engine_bug.repo.environment)
        seen = []
        result = run_agent(endpoint, bench, "Parcels at a band's exact limit are charged too much.", on_call=seen.append)
        grade = engine_bug.grade(workspace=ws)
    assert result.exit_reason == "submitted", result.error
    assert (result.steps, result.calls, result.malformed) == (4, 4, 0)
    assert (result.tokens_in, result.tokens_out) == (700 + 900 + 120 + 1500, 40 + 60 + 80 + 10)
    assert result.cost_usd == pytest.approx((3220 * 3 + 190 * 15) / 1e6)
    assert [c.tokens_in for c in seen] == [700, 900, 120, 1500]
    # the shell ran the tests in the sandbox and they passed after the edit
    shell_output = [m["content"] for m in result.messages if m["role"] == "tool"][2]
    assert shell_output.startswith("[exit code 0]") and "passed" in shell_output
    # tools went out with every request, in the protocol's own shape
    body = up.requests[0].body
    if protocol == "anthropic":
        assert {t["name"] for t in body["tools"]} == {"shell", "view", "edit", "submit"}
        assert body["system"].startswith("You are a careful software engineer")
        headers = up.requests[0].headers  # the SDK sends x-api-key or (newer) a bearer token
        assert "sk-upstream-secret" in (headers.get("x-api-key", ""), headers.get("authorization", "")[7:])
    else:
        assert body["tools"] == TOOL_SCHEMAS and body["messages"][0]["role"] == "system"
    assert grade.reward is True, grade.reason
    assert sample.path in grade.patch


def test_a_scripted_wrong_fix_earns_reward_false(engine_bug):
    sample = engine_bug.sample
    with FakeUpstream() as up, engine_bug.checkout() as ws:
        up.script(*fixing_script(sample, "if weight_grams < band.max_grams - 1:"))
        bench = Workbench(engine_bug.executor, ws, Limits(timeout_s=60), environment=engine_bug.repo.environment)
        result = run_agent(EndpointConfig("openai_chat", up.url, "m"), bench, "fix it")
        grade = engine_bug.grade(workspace=ws)
    assert result.exit_reason == "submitted"
    shell_output = [m["content"] for m in result.messages if m["role"] == "tool"][2]
    assert shell_output.startswith("[exit code 1]")  # the agent saw the tests fail ...
    assert grade.reward is False and "verifier did not pass" in grade.reason  # ... and so did the grader


# --- limits and failures (no sandbox needed: only view/edit/submit) -----------------------


@pytest.fixture
def bench(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    return Workbench(executor=None, workspace=tmp_path)


def looping_view(up):
    up.fallback = Reply(tool_calls=[call("v", "view", path="a.py")], tokens_in=100, tokens_out=10)


def test_the_step_limit_stops_the_loop(bench):
    with FakeUpstream() as up:
        looping_view(up)
        result = run_agent(EndpointConfig("openai_chat", up.url, "m"), bench, "t", limits=AgentLimits(max_steps=3))
    assert result.exit_reason == "step_limit" and result.steps == 3 and len(up.requests) == 3
    # every tool call got its result: the conversation is complete
    assert [m["role"] for m in result.messages] == ["system", "user"] + ["assistant", "tool"] * 3


def test_the_token_limit_stops_the_loop(bench):
    with FakeUpstream() as up:
        looping_view(up)
        result = run_agent(EndpointConfig("anthropic", up.url, "m"), bench, "t", limits=AgentLimits(max_tokens=250))
    assert result.exit_reason == "token_limit" and result.steps == 3 and result.tokens == 330


def test_the_cost_limit_stops_the_loop(bench):
    with FakeUpstream() as up:
        looping_view(up)
        endpoint = EndpointConfig("openai_chat", up.url, "m", usd_per_mtok_in=1000, usd_per_mtok_out=1000)
        result = run_agent(endpoint, bench, "t", limits=AgentLimits(max_cost_usd=0.5))
    assert result.exit_reason == "cost_limit" and result.steps == 5 and result.cost_usd == pytest.approx(0.55)


def test_the_time_limit_stops_the_loop(bench):
    now = [0.0]

    def clock():
        now[0] += 10  # every look at the clock: 10 s later
        return now[0]

    with FakeUpstream() as up:
        looping_view(up)
        result = run_agent(EndpointConfig("openai_chat", up.url, "m"), bench, "t", limits=AgentLimits(max_wall_s=35), clock=clock)
    assert result.exit_reason == "time_limit" and 1 <= result.steps < 4


def test_a_reply_without_tool_calls_finishes(bench):
    with FakeUpstream() as up:
        up.script("I think it is fine as it is.")
        result = run_agent(EndpointConfig("anthropic", up.url, "m"), bench, "t")
    assert result.exit_reason == "finished" and result.steps == 1
    assert result.messages[-1] == {"role": "assistant", "content": "I think it is fine as it is."}


def test_malformed_calls_are_told_back_and_counted(bench):
    def check(recorded):
        results = [m["content"] for m in recorded.body["messages"] if m["role"] == "tool"]
        assert results[0].startswith("error: unknown tool 'rm_rf'")
        assert results[1].startswith("error: the arguments of view are not valid JSON")
        assert results[2].startswith("error: view needs the argument(s) path")
        assert results[3].startswith("error: edit takes no argument force")
        assert results[4].startswith("error: the text to replace was not found")  # a tool error, not malformed
        return Reply(tool_calls=[call("ok", "edit", path="a.py", old="x = 1", new="x = 2"), call("s", "submit")])

    with FakeUpstream() as up:
        up.script(
            Reply(tool_calls=[
                call("b1", "rm_rf", path="/"),
                {"id": "b2", "name": "view", "arguments": '{"path": "a.py"'},
                call("b3", "view", start_line=1),
                call("b4", "edit", path="a.py", old="x", new="y", force=True),
                call("b5", "edit", path="a.py", old="y = 1", new="y = 2"),
            ]),
            check,
        )
        result = run_agent(EndpointConfig("openai_chat", up.url, "m"), bench, "t")
    assert result.exit_reason == "submitted", result.error
    assert result.malformed == 4 and result.tool_errors == 5
    assert (bench.workspace / "a.py").read_text() == "x = 2\n"


def test_upstream_errors_are_retried_then_end_the_run(bench):
    with FakeUpstream() as up:
        up.script(Reply.error(503), Reply(tool_calls=[call("s", "submit")]))
        ok = run_agent(EndpointConfig("openai_chat", up.url, "m"), bench, "t", sleep=lambda s: None)
    assert ok.exit_reason == "submitted" and ok.calls == 2 and ok.steps == 1
    with FakeUpstream() as up:
        up.script(Reply.error(500), Reply.error(502), Reply.error(500, "still down"))
        bad = run_agent(EndpointConfig("anthropic", up.url, "m", api_key="sk-xyz-secret"), bench, "t", sleep=lambda s: None)
    assert bad.exit_reason == "error" and bad.calls == 3 and "still down" in bad.error
    with FakeUpstream() as up:
        up.script(Reply.error(401, "bad key"))
        denied = run_agent(EndpointConfig("anthropic", up.url, "m"), bench, "t", sleep=lambda s: None)
    assert denied.exit_reason == "error" and denied.calls == 1  # not retried


def test_anthropic_turns_alternate_and_keep_the_models_own_blocks():
    thinking = [{"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "tool_use", "id": "t1", "name": "view", "input": {"path": "a"}}]
    system, turns = to_anthropic([
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U"},
        {"role": "assistant", "content": "", "_anthropic_content": thinking, "tool_calls": []},
        {"role": "tool", "tool_call_id": "t1", "content": "error: nope"},
        {"role": "assistant", "content": "ok", "tool_calls": [
            {"id": "t2", "type": "function", "function": {"name": "submit", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t2", "content": ""},
    ])
    assert system == "S"
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant", "user"]
    assert turns[1]["content"] == thinking
    assert turns[2]["content"] == [{"type": "tool_result", "tool_use_id": "t1", "content": "error: nope", "is_error": True}]
    assert turns[3]["content"][1] == {"type": "tool_use", "id": "t2", "name": "submit", "input": {}}
    assert json.dumps(turns)  # plain JSON all the way
