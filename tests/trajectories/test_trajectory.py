"""The canonical trajectory from recorded calls, per protocol, and its validator."""
import json

import pytest

from episodes.engine.trajectories.canonical import TrajectoryError, canonical_from_calls, check_canonical

ANTHROPIC_TOOLS = [
    {"name": "bash", "description": "Run a shell command", "input_schema": {
        "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}},
    {"name": "web_search", "type": "web_search_20250305"},  # server tool: no schema to learn
    {"name": "Later", "description": "deferred", "input_schema": {"type": "object", "properties": {}}, "defer_loading": True},
]
SYSTEM = [
    {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1; cc_entrypoint=sdk-cli;"},
    {"type": "text", "text": "You fix bugs.", "cache_control": {"type": "ephemeral"}},
]


def anthropic_call(messages, content, path="/v1/messages?beta=true", tools=ANTHROPIC_TOOLS, **extra):
    return {
        "protocol": "anthropic", "path": path,
        "request": {"model": "claude-x", "system": SYSTEM, "tools": tools, "messages": messages, "stream": True},
        "response": {"id": "msg_1", "type": "message", "role": "assistant", "content": content,
                     "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 5}},
        **extra,
    }


TURN1 = [{"role": "user", "content": "fix cart.py"}]
TOOL_USE = [
    {"type": "thinking", "thinking": "Look first.", "signature": "abc"},
    {"type": "text", "text": "Reading."},
    {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "cat cart.py"}},
]
TURN2 = TURN1 + [
    {"role": "assistant", "content": TOOL_USE},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "def total(): ..."}]},
        {"type": "text", "text": "<system-reminder>be brief</system-reminder>"},
    ]},
]


def test_anthropic_episode_is_the_longest_complete_call():
    calls = [
        anthropic_call(TURN1, TOOL_USE),
        # Claude Code's side call (a title): short, no tools — not the conversation
        anthropic_call([{"role": "user", "content": "title for: fix cart.py"}], [{"type": "text", "text": "Cart fix"}], tools=[]),
        {"protocol": "anthropic", "path": "/v1/messages/count_tokens", "request": {"messages": TURN2 * 3}, "response": {"input_tokens": 9}},
        anthropic_call(TURN2, [{"type": "text", "text": "Fixed."}]),
        # a failed retry of a longer request is not a complete conversation
        anthropic_call(TURN2 + [{"role": "assistant", "content": "Fixed."}, {"role": "user", "content": "more"}], [],
                       status_code=529, error="overloaded"),
    ]
    traj = canonical_from_calls(calls)
    assert traj["messages"] == [
        {"role": "system", "content": "You fix bugs."},
        {"role": "user", "content": "fix cart.py"},
        {"role": "assistant", "content": "Reading.", "reasoning_content": "Look first.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "bash", "arguments": {"command": "cat cart.py"}}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "def total(): ..."},
        {"role": "user", "content": "<system-reminder>be brief</system-reminder>"},
        {"role": "assistant", "content": "Fixed."},
    ]
    assert traj["tools"] == [{"type": "function", "function": {
        "name": "bash", "description": "Run a shell command", "parameters": ANTHROPIC_TOOLS[0]["input_schema"]}}]
    assert check_canonical(traj) == []


def test_a_sub_agent_is_not_the_episode_even_when_it_ran_longer():
    main = anthropic_call(TURN2, [{"type": "text", "text": "Fixed."}])
    explore = [{"role": "user", "content": "find other thresholds"}]
    for i in range(4):
        explore += [{"role": "assistant", "content": [{"type": "tool_use", "id": f"sub{i}", "name": "bash", "input": {"command": "grep"}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"sub{i}", "content": "none"}]}]
    sub = anthropic_call(explore, [{"type": "text", "text": "No other thresholds."}])
    sub["request"]["system"] = "You are a read-only search agent."
    traj = canonical_from_calls([anthropic_call(TURN1, TOOL_USE), sub, main])
    assert traj["messages"][-1] == {"role": "assistant", "content": "Fixed."}
    assert traj["messages"][0] == {"role": "system", "content": "You fix bugs."}


def test_anthropic_parallel_tool_results_each_become_a_tool_message():
    messages = TURN1 + [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "bash", "input": {"command": "ls"}},
            {"type": "tool_use", "id": "t2", "name": "bash", "input": {"command": "pwd"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t2", "content": "/w"},
            {"type": "tool_result", "tool_use_id": "t1", "content": "a.py", "is_error": True}]},
    ]
    traj = canonical_from_calls([anthropic_call(messages, [{"type": "text", "text": "ok"}])])
    roles = [(m["role"], m.get("tool_call_id")) for m in traj["messages"]]
    assert roles == [("system", None), ("user", None), ("assistant", None), ("tool", "t2"), ("tool", "t1"), ("assistant", None)]
    assert check_canonical(traj) == []


def test_openai_chat_arguments_are_decoded_and_developer_is_system():
    request = {
        "model": "gpt-x",
        "messages": [
            {"role": "developer", "content": "You fix bugs."},
            {"role": "user", "content": [{"type": "text", "text": "fix cart.py"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "view", "arguments": "{\"path\": \"cart.py\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "def total(): ..."},
        ],
        "tools": [{"type": "function", "function": {"name": "view", "description": "View a file", "parameters": {
            "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}],
    }
    # what the gateway stores for a streamed call: the reassembled, non-streaming body
    response = {"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "", "tool_calls": [
            {"id": "call_2", "type": "function", "function": {"name": "view", "arguments": "{\"path\": \"tests/test_cart.py\"}"}}]}}]}
    traj = canonical_from_calls([{"protocol": "openai_chat", "path": "/v1/chat/completions", "request": request, "response": response}])
    assert traj["messages"][0] == {"role": "system", "content": "You fix bugs."}
    assert traj["messages"][1] == {"role": "user", "content": "fix cart.py"}
    assert traj["messages"][2]["tool_calls"][0]["function"]["arguments"] == {"path": "cart.py"}
    assert traj["messages"][-1]["tool_calls"][0]["function"]["arguments"] == {"path": "tests/test_cart.py"}
    assert traj["tools"] == request["tools"]
    # the model's last call is unanswered: fine for SFT (it is what it did)
    assert check_canonical(traj) == []


def test_responses_instructions_function_calls_and_outputs():
    request = {
        "model": "gpt-5-codex", "instructions": "You are Codex.",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions>none</permissions>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix cart.py"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Check the file."}], "encrypted_content": "gAAA"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "exec_command", "arguments": "{\"cmd\":\"cat cart.py\"}"},
            {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "def total(): ..."},
            {"type": "function_call_output", "call_id": "call_2", "output": "cart.py"},
            {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_3", "name": "apply_patch", "input": "*** Begin Patch\n*** End Patch"},
            {"type": "custom_tool_call_output", "call_id": "call_3", "output": "Done!"},
        ],
        "tools": [
            {"type": "function", "name": "exec_command", "description": "Run", "strict": False,
             "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
            {"type": "custom", "name": "apply_patch", "description": "Patch files", "format": {"type": "grammar"}},
            {"type": "namespace", "name": "multi_agent", "tools": [
                {"type": "function", "name": "spawn_agent", "parameters": {"type": "object", "properties": {}}}]},
            {"type": "web_search"},
        ],
        "stream": True,
    }
    response = {"id": "resp_2", "object": "response", "status": "completed", "output": [
        {"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": "Fixed cart.py.", "annotations": []}]}]}
    traj = canonical_from_calls([{"protocol": "openai_responses", "path": "/v1/responses", "request": request, "response": response}])
    m = traj["messages"]
    assert m[0] == {"role": "system", "content": "You are Codex.\n\n<permissions>none</permissions>"}
    assert m[2]["reasoning_content"] == "Check the file."
    assert [c["function"]["arguments"] for c in m[2]["tool_calls"]] == [{"cmd": "cat cart.py"}, {"cmd": "ls"}]
    assert [(x["role"], x.get("tool_call_id")) for x in m[3:]] == [
        ("tool", "call_1"), ("tool", "call_2"), ("assistant", None), ("tool", "call_3"), ("assistant", None)]
    assert m[5]["tool_calls"][0]["function"] == {"name": "apply_patch", "arguments": {"input": "*** Begin Patch\n*** End Patch"}}
    assert m[-1] == {"role": "assistant", "content": "Fixed cart.py."}
    assert [t["function"]["name"] for t in traj["tools"]] == ["exec_command", "apply_patch", "spawn_agent"]
    assert check_canonical(traj) == []


def test_responses_previous_response_id_chains_are_rebuilt():
    first = {"protocol": "openai_responses", "path": "/v1/responses",
             "request": {"instructions": "Sys", "input": "fix it", "tools": []},
             "response": {"id": "resp_1", "output": [
                 {"type": "function_call", "call_id": "c1", "name": "run", "arguments": "{}"}]}}
    second = {"protocol": "openai_responses", "path": "/v1/responses",
              "request": {"instructions": "Sys", "previous_response_id": "resp_1",
                          "input": [{"type": "function_call_output", "call_id": "c1", "output": "ok"}]},
              "response": {"id": "resp_2", "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "done"}]}]}}
    traj = canonical_from_calls([first, second])
    assert [m["role"] for m in traj["messages"]] == ["system", "user", "assistant", "tool", "assistant"]


def test_no_completed_call_is_an_error():
    with pytest.raises(TrajectoryError, match="none of the 1 recorded call"):
        canonical_from_calls([anthropic_call(TURN1, [], status_code=500, error="boom")])


X_TOOL = {"type": "function", "function": {"name": "x", "description": "", "parameters": {"type": "object", "properties": {}}}}


def test_validator_reports_what_sft_would_trip_on():
    traj = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "nope", "arguments": "{not json"}}]},
            {"role": "tool", "tool_call_id": "c9", "content": "orphan"},
            {"role": "robot", "content": "?"},
            {"role": "user", "content": ["parts"]},
        ],
        "tools": [{"type": "function", "function": {"name": "view", "parameters": {"type": "string"}}},
                  {"type": "function", "function": {"name": "view", "parameters": {"type": "object"}}}],
    }
    problems = check_canonical(traj)
    text = json.dumps(problems)
    for expected in ("duplicates the name 'view'", "parameters are not a JSON schema", "arguments are not a JSON object",
                     "calls 'nope', which is not in tools", "answers tool call 'c9'", "role 'robot'",
                     "content is not a string", "last message is not an assistant turn"):
        assert expected in text, (expected, problems)
    assert check_canonical({"messages": [], "tools": []}) == ["no messages"]
    assert check_canonical([]) == ["trajectory is not an object"]
    # a tool answered twice: the second answer has no open call left
    twice = {"messages": [
        {"role": "assistant", "content": "", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "x", "arguments": {}}}]},
        {"role": "tool", "tool_call_id": "a", "content": "1"}, {"role": "tool", "tool_call_id": "a", "content": "2"},
        {"role": "assistant", "content": "ok"}], "tools": [X_TOOL]}
    assert check_canonical(twice) == ["messages[2] answers tool call 'a', which no earlier assistant turn left open"]
    # tool calls with no tool schemas at all: a student could not learn what it called
    assert "messages[0].tool_calls[0] calls 'x', but the trajectory has no tool schemas" in check_canonical(
        {**twice, "tools": []})
