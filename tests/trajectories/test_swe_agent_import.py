"""SWE-agent ``.traj`` import: the last model call's query plus its reply, as the model saw it.

The fixtures are built the way SWE-agent 1.x writes them (``DefaultAgent``): ``history`` gets
the system prompt, demonstrations, the instance prompt, then per step the assistant entry and
its observation; each trajectory step's ``query`` is the history so far after the history
processors (here ``cache_control`` on the last two messages, and in the text run
``last_n_observations``)."""
import copy
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from episodes.engine.trajectories.importers import FORMATS, ImportFormatError, import_text
from episodes.engine.trajectories.canonical import check_canonical
from episodes.solving.imports import HARNESS_OF_FORMAT
from episodes.management.commands.import_episodes import PATTERNS
from episodes.models import Bug, Episode, Repository

SYSTEM_FC = "You are a helpful assistant that can interact with a computer to solve tasks."
INSTANCE = (
    "<uploaded_files>\n/testbed\n</uploaded_files>\nI've uploaded a python code repository in the directory "
    "/testbed. Consider the following PR description:\n\n<pr_description>\nshipping() charges 5 for an order "
    "of exactly 50, but orders from 50 up ship free.\n</pr_description>\n\nCan you help me implement the "
    "necessary changes to the repository so that the requirements specified in the <pr_description> are met?"
)
DIFF = (
    "diff --git a/shipping.py b/shipping.py\n--- a/shipping.py\n+++ b/shipping.py\n@@ -1,4 +1,4 @@\n"
    " FREE_FROM = 50\n \n def shipping(total):\n-    return 0 if total > FREE_FROM else 5\n"
    "+    return 0 if total >= FREE_FROM else 5\n"
)
VIEW = ("Here's the result of running `cat -n` on /testbed/shipping.py:\n     1\tFREE_FROM = 50\n     2\t\n"
        "     3\tdef shipping(total):\n     4\t    return 0 if total > FREE_FROM else 5\n")


def replay_config(name="anthropic/claude-sonnet-4-20250514", **model):
    return json.dumps({
        "env": {"deployment": {"image": "python:3.11", "type": "docker"}, "repo": {"path": "/testbed", "type": "local"}},
        "agent": {
            "name": "main", "type": "default",
            "templates": {"system_template": SYSTEM_FC, "instance_template": "{{problem_statement}}"},
            "tools": {"bundles": [{"path": "tools/registry"}, {"path": "tools/edit_anthropic"}, {"path": "tools/review_on_submit_m"}],
                      "enable_bash_tool": True, "parse_function": {"type": "function_calling"}},
            "history_processors": [{"type": "cache_control", "last_n_messages": 2}],
            "model": {"name": name, "per_instance_cost_limit": 3.0, "temperature": 0.0, **model},
        },
        "problem_statement": {"type": "text", "id": "shop-1"},
    })


def cached(messages):
    """SWE-agent's cache_control processor: the last two user/tool messages' content as parts."""
    out = copy.deepcopy(messages)
    marked = 0
    for m in reversed(out):
        if m["role"] in ("user", "tool") and marked < 2:
            if isinstance(m["content"], str):
                m["content"] = [{"type": "text", "text": m["content"]}]
            m["content"][-1]["cache_control"] = {"type": "ephemeral"}
            marked += 1
    return out


def call(call_id, name, **arguments):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def run_file(history, trajectory, exit_status="submitted", submission=DIFF, **extra):
    return {
        "trajectory": trajectory,
        "history": history,
        "info": {
            "swe_agent_hash": "c1d2e3f", "swe_agent_version": "1.1.0", "swe_rex_version": "1.2.1", "swe_rex_hash": "unavailable",
            "submission": submission, "exit_status": exit_status,
            "edited_files30": "", "edited_files50": "", "edited_files70": "",
            "model_stats": {"instance_cost": 0.0421, "tokens_sent": 18234, "tokens_received": 611, "api_calls": 3},
        },
        "replay_config": replay_config(),
        "environment": "main",
        **extra,
    }


def step(query, response, action, observation, thought=None):
    return {"action": action, "observation": observation, "response": response, "thought": thought or response,
            "execution_time": 0.12, "state": {"working_dir": "/testbed"}, "query": query, "extra_info": {}}


def function_calling_run():
    """Views the file, edits it, submits: three tool calls, each answered by a tool observation."""
    history = [
        {"role": "system", "content": SYSTEM_FC, "agent": "main", "message_type": "system_prompt"},
        {"role": "user", "content": [{"type": "text", "text": INSTANCE}], "agent": "main", "message_type": "observation"},
    ]
    replies = [
        ("Let me look at shipping.py first.", call("toolu_01view", "str_replace_editor", command="view", path="/testbed/shipping.py"),
         "OBSERVATION:\n" + VIEW, "I should read the function before changing it."),
        ("The comparison excludes 50 itself; make it inclusive.",
         call("toolu_02edit", "str_replace_editor", command="str_replace", path="/testbed/shipping.py",
              old_str="total > FREE_FROM", new_str="total >= FREE_FROM"),
         "OBSERVATION:\nThe file /testbed/shipping.py has been edited. Review the changes and make sure they are as expected.", None),
        ("The fix is in place; submitting.", call("toolu_03submit", "submit"), DIFF, None),
    ]
    steps = []
    for text, tool_call, observation, thinking in replies:
        query = cached(history)
        args = json.loads(tool_call["function"]["arguments"])
        action = f"str_replace_editor {args.get('command')} {args.get('path')}" if args else "submit"
        entry = {"role": "assistant", "content": text, "thought": text, "action": action, "agent": "main",
                 "tool_calls": [tool_call], "message_type": "action",
                 "thinking_blocks": [{"type": "thinking", "thinking": thinking, "signature": "sig"}] if thinking else []}
        history.append(entry)
        history.append({"role": "tool", "content": [{"type": "text", "text": observation}], "agent": "main",
                        "message_type": "observation", "tool_call_ids": [tool_call["id"]]})
        steps.append(step(query, text, action, observation))
    return run_file(history, steps)


SYSTEM_TEXT = (
    "SETTING: You are an autonomous programmer, and you're working directly in the command line with a special "
    "interface.\n\nCOMMANDS:\nfind_file:\n  docstring: finds all files with the given name\n  signature: find_file "
    "<file_name> [<dir>]\n\nRESPONSE FORMAT:\nYour shell prompt is formatted as follows:\n(Open file: <path>) <cwd> $\n\n"
    "You need to format your output using two fields; discussion and command."
)
DEMO = ("Here is a demonstration of how to correctly accomplish this task.\n--- DEMONSTRATION ---\n"
        "We're currently solving the following issue within our repository. ...\n--- END OF DEMONSTRATION ---")
FIND_OUTPUT = 'Found 1 matches for "shipping.py" in /testbed:\n/testbed/shipping.py\n(Open file: n/a)\n(Current directory: /testbed)\nbash-$'


def text_run(*, put_demos_in_history=False):
    """The thought-action parser: commands in ``` blocks, observations as user turns; one
    format error requeried mid-run; last_n_observations elides the first output in the last query."""
    demo = [{"role": "user", "content": DEMO, "agent": "main", "is_demo": True, "message_type": "demonstration"}]
    if put_demos_in_history:
        demo = [
            {"role": "user", "content": "DEMO ISSUE: fix the parser", "agent": "main", "is_demo": True, "message_type": "observation"},
            {"role": "assistant", "content": "DEMO ACTION\n```\nfind_file parser.py\n```", "agent": "main", "is_demo": True,
             "message_type": "action", "thought": "DEMO ACTION", "action": "find_file parser.py"},
            {"role": "user", "content": "DEMO OBSERVATION", "agent": "main", "is_demo": True, "message_type": "observation"},
        ]
    history = [{"role": "system", "content": SYSTEM_TEXT, "agent": "main", "message_type": "system_prompt"}, *demo,
               {"role": "user", "content": f"We're currently solving the following issue within our repository.\nISSUE:\n{INSTANCE}",
                "agent": "main", "message_type": "observation"}]
    steps = []

    def act(response, action, observation, query=None):
        steps.append(step(query if query is not None else copy.deepcopy(history), response, action, observation))
        history.append({"role": "assistant", "content": response, "thought": response.split("```")[0].strip(),
                        "action": action, "agent": "main", "tool_calls": None, "message_type": "action"})
        history.append({"role": "user", "content": f"OBSERVATION:\n{observation}", "agent": "main", "message_type": "observation"})

    act("DISCUSSION\nFirst I'll find the file.\n\n```\nfind_file shipping.py\n```", "find_file shipping.py", FIND_OUTPUT)
    # a reply without a command: SWE-agent requeries with a temporary exchange, kept only in the trajectory
    bad = "I think the comparison is wrong, I'll fix it."
    steps.append(step(copy.deepcopy(history), bad, "", "", thought=bad))
    requery = copy.deepcopy(history) + [
        {"role": "assistant", "content": bad, "agent": "main", "message_type": "assistant"},
        {"role": "user", "content": "Your output was not formatted correctly. You must always include one discussion and one command.",
         "agent": "main", "message_type": "user"},
    ]
    act("DISCUSSION\nThe comparison should be inclusive.\n\n```\nedit 4:4\n    return 0 if total >= FREE_FROM else 5\nend_of_edit\n```",
        "edit 4:4\n    return 0 if total >= FREE_FROM else 5\nend_of_edit", "File updated.", query=requery)
    last_query = copy.deepcopy(history)
    first_obs = next(m for m in last_query if m["content"].startswith("OBSERVATION:\nFound 1 matches"))
    first_obs["content"] = "Old environment output: (5 lines omitted)"
    act("DISCUSSION\nDone; submitting.\n\n```\nsubmit\n```", "submit", DIFF, query=last_query)
    data = run_file(history, steps)
    config = json.loads(data["replay_config"])
    config["agent"]["tools"] = {"bundles": [{"path": "tools/defaults"}], "parse_function": {"type": "thought_action"}}
    config["agent"]["model"]["name"] = "gpt-4o"
    data["replay_config"] = json.dumps(config)
    return data


def cost_limited_run():
    """One real step, then the cost limit: SWE-agent writes its own "Exit due to cost limit"
    assistant turn (a step with an empty query) and autosubmits the working tree's diff."""
    data = function_calling_run()
    history = data["history"][:4]
    data["trajectory"] = data["trajectory"][:1]
    message = "Exit due to cost limit"
    data["trajectory"].append({"action": "", "observation": "Exited (autosubmitted)", "response": message, "thought": message,
                               "execution_time": 0.0, "state": {}, "query": [], "extra_info": {}})
    history += [{"role": "assistant", "content": message, "thought": message, "action": "", "agent": "main",
                 "tool_calls": None, "message_type": "action", "thinking_blocks": []},
                {"role": "user", "content": "Exited (autosubmitted)", "agent": "main", "message_type": "observation"}]
    data["history"] = history
    data["info"]["exit_status"] = "submitted (exit_cost)"
    data["info"]["model_stats"] = {"instance_cost": 3.02, "tokens_sent": 412000, "tokens_received": 9000, "api_calls": 2}
    return data


def load(data, source="run.traj"):
    return import_text("swe_agent", json.dumps(data), source=source)


def roles(traj):
    return [m["role"] for m in traj["messages"]]


def test_function_calling_run_pairs_tool_calls_with_results():
    episode = load(function_calling_run())
    traj = episode.trajectory
    assert roles(traj) == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert traj["messages"][0] == {"role": "system", "content": SYSTEM_FC}
    assert traj["messages"][1] == {"role": "user", "content": INSTANCE}  # content parts (cache_control) flattened
    calls = [m["tool_calls"] for m in traj["messages"] if m["role"] == "assistant"]
    assert [[c["id"] for c in cs] for cs in calls] == [["toolu_01view"], ["toolu_02edit"], ["toolu_03submit"]]
    assert calls[0][0]["function"] == {"name": "str_replace_editor", "arguments": {"command": "view", "path": "/testbed/shipping.py"}}
    assert calls[1][0]["function"]["arguments"]["new_str"] == "total >= FREE_FROM"
    assert calls[2][0]["function"] == {"name": "submit", "arguments": {}}
    tools = [m for m in traj["messages"] if m["role"] == "tool"]
    assert [t["tool_call_id"] for t in tools] == ["toolu_01view", "toolu_02edit"]
    assert tools[0]["content"] == "OBSERVATION:\n" + VIEW
    assert traj["messages"][2]["reasoning_content"] == "I should read the function before changing it."
    assert "reasoning_content" not in traj["messages"][4]
    # the submit's output (the diff) came after the model's last call: never sent, not in the trajectory
    assert traj["messages"][-1]["content"] == "The fix is in place; submitting."
    assert DIFF not in json.dumps(traj["messages"])
    # no tool schemas in a .traj: tools stay empty, and the metadata says so
    assert traj["tools"] == [] and episode.metadata["tool_schemas_missing"] is True
    assert check_canonical({**traj, "tools": [
        {"type": "function", "function": {"name": n, "description": "", "parameters": {"type": "object", "properties": {}}}}
        for n in ("str_replace_editor", "submit")]}) == []
    meta = episode.metadata
    assert meta["harness"] == "swe_agent" and meta["model"] == "anthropic/claude-sonnet-4-20250514"
    assert meta["cli_version"] == "1.1.0" and meta["cli_commit"] == "c1d2e3f"
    assert meta["cost_usd"] == 0.0421 and meta["tokens_in"] == 18234 and meta["tokens_out"] == 611 and meta["api_calls"] == 3
    assert meta["exit_status"] == "submitted" and meta["exit_reason"] == "submitted" and not episode.failed
    assert meta["submission"] == DIFF and meta["steps"] == 3
    assert meta["conversation_from"] == "trajectory[2].query"
    assert meta["final_message"] == "The fix is in place; submitting."
    # events: the steps as recorded, without the per-step copy of the conversation
    assert len(episode.events) == 3 and "query" not in episode.events[0] and episode.events[0]["action"].startswith("str_replace_editor view")


def test_tool_schemas_are_read_when_the_file_has_them():
    data = function_calling_run()
    data["tools"] = [{"type": "function", "function": {"name": n, "description": f"the {n} tool",
                                                       "parameters": {"type": "object", "properties": {}}}}
                     for n in ("bash", "str_replace_editor", "submit")]
    episode = load(data)
    assert [t["function"]["name"] for t in episode.trajectory["tools"]] == ["bash", "str_replace_editor", "submit"]
    assert check_canonical(episode.trajectory) == [] and "tool_schemas_missing" not in episode.metadata


def test_text_run_is_what_the_model_was_sent():
    episode = load(text_run())
    traj = episode.trajectory
    assert check_canonical(traj) == []
    # system, demonstration (one user message the model was sent), instance, then 3 kept replies
    assert roles(traj) == ["system", "user", "user", "assistant", "user", "assistant", "user", "assistant"]
    assert traj["messages"][1]["content"] == DEMO
    assert not any(m.get("tool_calls") for m in traj["messages"])
    assert traj["messages"][3]["content"].endswith("```\nfind_file shipping.py\n```")
    # last_n_observations elided the first output in the last call: that, not the history's full text, is kept
    assert traj["messages"][4]["content"] == "Old environment output: (5 lines omitted)"
    assert "Found 1 matches" not in json.dumps(traj)
    # the requeried format error is not in the final call's input
    assert "I think the comparison is wrong" not in json.dumps(traj) and "not formatted correctly" not in json.dumps(traj)
    assert traj["messages"][-1]["content"].endswith("```\nsubmit\n```")
    assert traj["tools"] == [] and "tool_schemas_missing" not in episode.metadata
    meta = episode.metadata
    assert meta["model"] == "gpt-4o" and meta["steps"] == 3 and meta["exit_reason"] == "submitted"
    assert meta["conversation_from"] == "trajectory[3].query"
    assert "demonstration_messages_dropped" not in meta


def test_demonstrations_put_into_the_history_are_dropped():
    episode = load(text_run(put_demos_in_history=True))
    text = json.dumps(episode.trajectory)
    assert "DEMO" not in text
    assert roles(episode.trajectory)[:3] == ["system", "user", "assistant"]
    assert episode.metadata["demonstration_messages_dropped"] == 3 and episode.metadata["steps"] == 3
    assert check_canonical(episode.trajectory) == []


def test_system_prompt_sent_as_user_when_the_model_config_says_so():
    data = text_run()
    config = json.loads(data["replay_config"])
    config["agent"]["model"]["convert_system_to_user"] = True
    data["replay_config"] = json.dumps(config)
    traj = load(data).trajectory
    assert traj["messages"][0] == {"role": "user", "content": SYSTEM_TEXT}


def test_cost_limited_run_drops_the_harness_exit_turn():
    episode = load(cost_limited_run())
    traj = episode.trajectory
    assert roles(traj) == ["system", "user", "assistant"]
    assert traj["messages"][-1]["tool_calls"][0]["id"] == "toolu_01view"
    assert "Exit due to cost limit" not in json.dumps(traj)
    meta = episode.metadata
    assert meta["exit_status"] == "submitted (exit_cost)" and meta["exit_reason"] == "cost_limit"
    assert not episode.failed and meta["submission"] == DIFF and meta["cost_usd"] == 3.02
    assert meta["conversation_from"] == "trajectory[0].query"


@pytest.mark.parametrize("status,reason,failed", [
    ("submitted", "submitted", False),
    ("submitted (exit_context)", "token_limit", False),
    ("exit_cost", "cost_limit", False),
    ("exit_context", "token_limit", False),
    ("exit_step_limit", "step_limit", False),
    ("exit_total_execution_time", "time_limit", False),
    ("exit_forfeit", "finished", False),
    ("exit_command", "finished", False),
    ("exit_format", "error", True),
    ("exit_error", "error", True),
    ("submitted (exit_environment_error)", "error", True),
    (None, "error", True),
])
def test_exit_status_maps_to_an_exit_reason(status, reason, failed):
    data = function_calling_run()
    data["info"]["exit_status"] = status
    episode = load(data)
    assert episode.metadata["exit_reason"] == reason and episode.failed is failed
    if failed:
        assert episode.metadata["error"].startswith("SWE-agent")


def test_history_only_file_falls_back_to_the_history():
    """SWE-agent 0.x steps have no query: the main agent's history, up to its last reply."""
    data = text_run()
    for s in data["trajectory"]:
        del s["query"]
    data["history"].insert(3, {"role": "user", "content": "side agent", "agent": "reviewer"})
    episode = load(data)
    traj = episode.trajectory
    assert episode.metadata["conversation_from"] == "history"
    assert roles(traj) == ["system", "user", "user", "assistant", "user", "assistant", "user", "assistant"]
    assert traj["messages"][4]["content"].startswith("OBSERVATION:\nFound 1 matches")  # the history's own text
    assert "side agent" not in json.dumps(traj) and DIFF not in json.dumps(traj["messages"])
    assert check_canonical(traj) == []


def test_without_history_the_last_query_and_its_response():
    data = function_calling_run()
    del data["history"]
    traj = load(data).trajectory
    assert roles(traj) == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert traj["messages"][-1] == {"role": "assistant", "content": "The fix is in place; submitting."}


def test_missing_replay_config_leaves_the_model_unknown():
    data = function_calling_run()
    data["replay_config"] = None
    assert load(data).metadata["model"] == ""
    data["replay_config"] = "{not json"
    assert load(data).metadata["model"] == ""


def malformed_query_role():
    data = function_calling_run()
    data["trajectory"][0]["query"][1]["role"] = "wizard"
    return data


def tool_without_ids():
    data = function_calling_run()
    del data["trajectory"][2]["query"][3]["tool_call_ids"]
    return data


@pytest.mark.parametrize("text,message", [
    ("{", "not valid JSON"),
    ("[1, 2]", 'expected an object with a "trajectory" or "history" list'),
    ('{"messages": [], "info": {}}', "looks like mini-swe-agent's format"),
    ('{"trajectory": [1]}', "trajectory[0] is not an object"),
    ('{"trajectory": [{"query": "hi"}]}', "trajectory[0].query is not a list"),
    ('{"history": [{"role": "system", "content": "s"}, {"role": "wizard", "content": "x"}]}', "history[1] has role 'wizard'"),
    ('{"history": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], "trajectory": []}',
     "no assistant turn"),
    ('{"history": [], "trajectory": []}', "no step has a query and there is no history"),
    (json.dumps(malformed_query_role()), "trajectory[0].query[1] has role 'wizard'"),
    (json.dumps(tool_without_ids()), "trajectory[2].query[3] is a tool observation without tool_call_ids"),
])
def test_malformed_input_is_a_clear_error(text, message):
    with pytest.raises(ImportFormatError) as e:
        import_text("swe_agent", text, source="bad.traj")
    assert message in str(e.value) and str(e.value).startswith("bad.traj")


def test_registered_for_the_command():
    assert "swe_agent" in FORMATS and PATTERNS["swe_agent"] == "*.traj" and HARNESS_OF_FORMAT["swe_agent"] == "imported"


@pytest.mark.django_db
def test_import_command_stores_a_swe_agent_episode(tmp_path):
    repo = Repository.objects.create(name="shop", source="/nowhere", pinned_commit="a" * 40)
    bug = Bug.objects.create(repository=repo, base_commit="a" * 40, patch="--- a/x\n+++ b/x\n", verifier="v")
    (tmp_path / "runs" / "shop-1").mkdir(parents=True)
    (tmp_path / "runs" / "shop-1" / "shop-1.traj").write_text(json.dumps(function_calling_run()))
    (tmp_path / "runs" / "shop-1" / "shop-1.pred").write_text("{}")  # SWE-agent's other outputs are not picked up
    out, err = StringIO(), StringIO()
    try:
        call_command("import_episodes", "--format", "swe_agent", "--teacher", "swe-logs", "--bug", str(bug.pk),
                     str(tmp_path / "runs"), stdout=out, stderr=err)
    except CommandError as exc:  # pragma: no cover - shows the command's report
        pytest.fail(f"{exc}\n{err.getvalue()}")
    episode = Episode.objects.get(teacher__name="swe-logs")
    assert episode.final_patch == DIFF and episode.exit_reason == "submitted" and episode.steps == 3
    assert episode.tokens_in == 18234 and str(episode.cost_usd) == "0.042100" and episode.teacher.harness == "imported"
