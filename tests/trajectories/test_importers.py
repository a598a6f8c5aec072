"""Importers: each format's fixture converts to a valid canonical trajectory; bad input is an
error naming the line. The claude_code_session / codex_rollout fixtures were written by the
real CLIs (capture_fixtures.py); the others are hand-written to the documented formats."""
import json
from pathlib import Path

import pytest

from episodes.engine.trajectories.importers import ImportFormatError, import_file, import_text
from episodes.engine.trajectories.canonical import check_canonical

FIXTURES = Path(__file__).with_name("fixtures")


def roles(traj):
    return [m["role"] for m in traj["messages"]]


def test_claude_code_real_session():
    episode = import_file("claude_code", FIXTURES / "claude_code_session.jsonl")
    traj = episode.trajectory
    assert check_canonical(traj) == []
    # the system reminders the CLI attached (environment, token budget) are where a Claude model
    # got them: in the first user turn, then appended to the tool results
    assert roles(traj) == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant", "tool", "assistant"]
    assert traj["messages"][1]["content"].startswith("<system-reminder>\n# Environment")
    assert traj["messages"][1]["content"].endswith("Fix pricing.py and run the test.")
    assert traj["messages"][3]["content"].endswith("<total_tokens>14999800 tokens left</total_tokens>\n</system-reminder>")
    calls = [m["tool_calls"][0]["function"] for m in traj["messages"] if m.get("tool_calls")]
    assert [c["name"] for c in calls] == ["Read", "Edit", "Bash"]
    assert calls[1]["arguments"]["new_string"] == "price * (1 - percent / 100)"
    results = {m["tool_call_id"]: m["content"] for m in traj["messages"] if m["role"] == "tool"}
    assert results["toolu_03Bash"].startswith("2 checks passed\n\n<system-reminder>")  # the Bash result, run in the sandbox
    # the logged request shape gives the exact system prompt and tool schemas
    assert "Claude" in traj["messages"][0]["content"]
    assert {"Bash", "Edit", "Read"} <= {t["function"]["name"] for t in traj["tools"]}
    meta = episode.metadata
    assert meta["harness"] == "claude_code" and meta["model"] == "claude-sonnet-4-5"
    assert meta["tokens_out"] > 0 and meta["cost_usd"] > 0 and meta["exit_reason"] == "finished"
    assert "test passes" in meta["final_message"]
    assert len(episode.events) == len((FIXTURES / "claude_code_session.jsonl").read_text().splitlines())


def test_claude_code_follows_the_parent_chain_not_file_order():
    episode = import_file("claude_code", FIXTURES / "claude_code_branched.jsonl")
    traj = episode.trajectory
    text = json.dumps(traj)
    assert "ABANDONED BRANCH" not in text and "SIDECHAIN" not in text
    assert roles(traj) == ["user", "assistant", "tool", "assistant", "tool", "user", "assistant", "tool", "assistant"]
    first = traj["messages"][1]  # one response logged as two entries (thinking+text, then tool_use)
    assert first["content"] == "Let me read the shipping rules."
    assert first["reasoning_content"] == "I should read shipping.py first."
    assert first["tool_calls"][0]["id"] == "toolu_A1"
    assert traj["messages"][4] == {"role": "tool", "tool_call_id": "toolu_B1", "content": "The file /work/shop/shipping.py has been updated."}
    assert traj["messages"][5] == {"role": "user", "content": "Also run the tests please."}
    # this hand-written log has no request shape: no tool schemas, so not SFT data as it stands
    assert check_canonical(traj) == ["messages[1].tool_calls[0] calls 'Read', but the trajectory has no tool schemas"]
    # usage of the split response counted once
    assert episode.metadata["tokens_in"] == 800 + 1000 + 1000 + 1100
    assert episode.metadata["session_id"] == "s-1"


def test_codex_real_rollout_keeps_one_copy_of_each_tool_output():
    episode = import_file("codex", FIXTURES / "codex_rollout.jsonl")
    traj = episode.trajectory
    # a rollout holds no tool schemas (the gateway's record of the run does)
    assert check_canonical(traj) == ["messages[3].tool_calls[0] calls 'exec_command', but the trajectory has no tool schemas"]
    tools = [m for m in traj["messages"] if m["role"] == "tool"]
    assert [t["tool_call_id"] for t in tools] == ["call_01cat", "call_02sed", "call_03test"]
    assert "2 checks passed" in tools[-1]["content"]
    # the rollout also has event_msg copies of command output: they are not duplicated
    assert json.dumps(traj).count("2 checks passed") == 1
    assert traj["messages"][0]["role"] == "system" and "Codex" in traj["messages"][0]["content"]
    assert traj["tools"] == []  # rollouts do not record tool schemas
    meta = episode.metadata
    assert meta["model"] == "gpt-5-codex" and meta["tokens_in"] > 0 and meta["exit_reason"] == "finished"


def test_mini_swe_agent_strips_extra_and_drops_exit():
    episode = import_file("mini_swe_agent", FIXTURES / "mini_swe_agent.traj.json")
    traj = episode.trajectory
    assert check_canonical(traj) == []
    assert roles(traj) == ["system", "user", "assistant", "user", "assistant", "user", "assistant"]
    assert "extra" not in json.dumps(traj)
    assert traj["messages"][3]["content"].startswith("<returncode>0</returncode>")  # content parts joined
    meta = episode.metadata
    assert meta["submission"].startswith("diff --git a/shipping.py")
    assert meta["cost_usd"] == 0.0123 and meta["model"] == "anthropic/claude-sonnet-4-20250514"
    assert meta["exit_reason"] == "submitted" and not episode.failed


def test_mini_swe_agent_error_exit_is_a_failed_episode():
    data = json.loads((FIXTURES / "mini_swe_agent.traj.json").read_text())
    data["info"]["exit_status"] = "RuntimeError"
    episode = import_text("mini_swe_agent", json.dumps(data))
    assert episode.failed and episode.metadata["exit_reason"] == "error"


@pytest.mark.parametrize("fmt,text,message", [
    ("claude_code", '{"type":"summary"}\n{"type":"user","uuid":"u1"}\n', "line 2: a user entry without a message"),
    ("claude_code", '{"type":"summary","summary":"x"}\n{oops\n', "line 2: not valid JSON"),
    ("claude_code", '[1, 2]\n', "line 1: expected a JSON object"),
    ("claude_code", '{"type":"user","uuid":"u2","parentUuid":"u1","message":{"role":"user","content":"hi"}}\n',
     "line 1: parentUuid u1 is not in the file"),
    ("claude_code", '{"type":"summary","summary":"x"}\n', "no main-chain user/assistant entries"),
    ("claude_code", "", "empty file"),
    ("codex", '{"timestamp":"t","type":"response_item","payload":{"type":"message","role":"user","content":[]}}\n{"type":"event_msg"}\n',
     "line 2: expected {timestamp, type, payload}"),
    ("codex", '{"timestamp":"t","type":"response_item","payload":{"role":"user"}}\n', "line 1: a response_item without an item type"),
    ("codex", '{"timestamp":"t","type":"session_meta","payload":{}}\n', "no response_item lines"),
    ("mini_swe_agent", '{"messages": [{"role": "user", "content": "x"}, {"role": "wizard"}]}', "messages[1] has role 'wizard'"),
    ("mini_swe_agent", '{"info": {}}', 'a "messages" list'),
    ("mini_swe_agent", "{", "not valid JSON"),
])
def test_malformed_input_is_a_clear_error(fmt, text, message):
    with pytest.raises(ImportFormatError) as e:
        import_text(fmt, text, source="bad.log")
    assert message in str(e.value) and str(e.value).startswith("bad.log")


def test_unknown_claude_entry_types_are_skipped_and_counted():
    lines = (FIXTURES / "claude_code_branched.jsonl").read_text() + json.dumps({"type": "brand-new-kind", "x": 1}) + "\n"
    episode = import_text("claude_code", lines)
    assert episode.metadata["skipped_entries"] == 3  # summary, file-history-snapshot, brand-new-kind
    assert [m["role"] for m in episode.trajectory["messages"]][:3] == ["user", "assistant", "tool"]
