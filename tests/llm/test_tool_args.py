"""A tool call's arguments are read by one decoder (``llm.tool_args``), with one rule for what is
not a JSON object: the agent tells the model, recorded and rendered conversations keep the
call as the model sent it — nothing turns bad arguments into ``{}`` behind anyone's back."""
import json

import pytest

from episodes.engine.solve.agent.loop import to_anthropic
from episodes.engine.solve.agent.tools import ToolError, parse_arguments
from episodes.engine.llm.tool_args import BadToolArguments, tool_arguments, tool_arguments_or_as_sent
from episodes.engine.trajectories.canonical import check_canonical, tool_call
from training.engine.rows import sft_row, template_message
from training.engine.serve import _template_messages

MALFORMED = '{"path": "a.py"'  # the closing brace missing


def test_a_json_object_string_or_a_dict_is_the_dict():
    assert tool_arguments('{"path": "a.py", "start": 3}') == {"path": "a.py", "start": 3}
    given = {"path": "a.py"}
    assert tool_arguments(given) is given


@pytest.mark.parametrize("empty", [None, ""])
def test_no_arguments_are_an_empty_object(empty):
    assert tool_arguments(empty) == {} == tool_arguments_or_as_sent(empty)


def test_malformed_json_raises_a_message_the_model_can_act_on():
    with pytest.raises(BadToolArguments) as info:
        tool_arguments(MALFORMED)
    assert str(info.value).startswith("are not valid JSON (")
    assert str(info.value).endswith("; send a JSON object")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("arguments, kind", [("[1, 2]", "list"), ('"a.py"', "str"), ("3", "int"), ("null", "NoneType"),
                                             ([1, 2], "list"), (3, "int"), ("  ", None)])
def test_a_value_that_is_not_an_object_raises(arguments, kind):
    with pytest.raises(BadToolArguments) as info:
        tool_arguments(arguments)
    if kind:  # whitespace is not JSON at all
        assert str(info.value) == f"must be a JSON object, not {kind}"
    else:
        assert str(info.value).startswith("are not valid JSON")


@pytest.mark.parametrize("arguments", [MALFORMED, "[1, 2]", [1, 2], '"a.py"'])
def test_the_lenient_reading_keeps_bad_arguments_exactly_as_sent(arguments):
    assert tool_arguments_or_as_sent(arguments) == arguments
    assert tool_arguments_or_as_sent('{"a": 1}') == {"a": 1}


# --- the callers ---------------------------------------------------------------------------


def test_the_agent_answers_bad_arguments_with_the_decoders_message():
    with pytest.raises(ToolError, match=r"^the arguments of view are not valid JSON \(.*\); send a JSON object$"):
        parse_arguments("view", MALFORMED)
    with pytest.raises(ToolError, match=r"^the arguments of view must be a JSON object, not list$"):
        parse_arguments("view", "[1]")
    assert parse_arguments("view", '{"path": "a.py"}') == {"path": "a.py"}


def test_a_trajectory_keeps_a_bad_call_and_check_canonical_reports_it():
    call = tool_call("c1", "view", MALFORMED)
    assert call["function"]["arguments"] == MALFORMED
    trajectory = {"messages": [{"role": "user", "content": "fix it"},
                               {"role": "assistant", "content": "", "tool_calls": [call]},
                               {"role": "tool", "tool_call_id": "c1", "content": "error: ..."}], "tools": []}
    assert any("arguments are not a JSON object" in p for p in check_canonical(trajectory))


def test_an_sft_row_never_trains_on_arguments_the_model_did_not_send():
    bad = {"role": "assistant", "content": None,
           "tool_calls": [{"id": "c1", "function": {"name": "view", "arguments": MALFORMED}}]}
    good = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c2", "function": {"name": "view", "arguments": '{"path": "a.py"}'}}]}
    assert template_message(good)["tool_calls"][0] == {"id": "c2", "type": "function",
                                                       "function": {"name": "view", "arguments": {"path": "a.py"}}}
    kept = template_message(bad)
    assert kept["content"] == "" and kept["tool_calls"][0]["function"]["arguments"] == MALFORMED
    row = sft_row({"messages": [{"role": "user", "content": "fix it"}, bad,
                                {"role": "tool", "tool_call_id": "c1", "content": "error: ..."}]}, 1, "cartcalc")
    # the builder checks the row as normalized and drops it as malformed (it used to pass as {"raw": ...})
    assert check_canonical({"messages": row["messages"], "tools": json.loads(row["tools"])})


def test_the_model_server_renders_the_same_messages_as_the_sft_rows():
    messages = [{"role": "user", "content": "fix it"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "view", "arguments": '"a.py"'}},
                    {"id": "c2", "type": "function", "function": {"name": "view", "arguments": '{"path": "a.py"}'}}]}]
    rendered = _template_messages(messages)
    assert rendered == [template_message(m) for m in messages]
    assert [c["function"]["arguments"] for c in rendered[1]["tool_calls"]] == ['"a.py"', {"path": "a.py"}]


def test_anthropic_history_sends_an_empty_input_only_for_a_call_already_answered_with_an_error():
    messages = [{"role": "user", "content": "fix it"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "c1", "function": {"name": "view", "arguments": MALFORMED}},
                    {"id": "c2", "function": {"name": "view", "arguments": '{"path": "a.py"}'}}]}]
    _, turns = to_anthropic(messages)
    inputs = [b["input"] for b in turns[1]["content"] if b["type"] == "tool_use"]
    assert inputs == [{}, {"path": "a.py"}]
