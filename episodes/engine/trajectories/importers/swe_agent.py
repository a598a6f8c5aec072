"""SWE-agent trajectories (``<instance>.traj``, SWE-agent 1.x; 0.x files without queries too).

    {"trajectory": [{"action", "observation", "response", "thought", "execution_time", "state",
                     "query": [the messages sent to the model for this step], "extra_info"}, ...],
     "history": [{"role", "content", "agent", "message_type", "tool_calls"?, "tool_call_ids"?,
                  "thinking_blocks"?, "is_demo"?}, ...],
     "info": {"submission", "exit_status", "model_stats": {"instance_cost", "tokens_sent",
              "tokens_received", "api_calls"}, "swe_agent_version", "swe_agent_hash", ...},
     "replay_config": "<RunSingleConfig as a JSON string>", "environment": "..."}

Which messages: what the model was sent. ``history`` is SWE-agent's raw record, but each call
sends it through the configured history processors first (``last_n_observations`` elides old
outputs, ``remove_regex`` cuts text, ``cache_control`` wraps content in parts), and a requery
after a format error sends a temporary exchange that never enters ``history``. Each step's
``query`` is that processed input, so the trajectory is the last model call's ``query``
followed by its reply — the same rule as ``canonical_from_calls`` for recorded calls. A step
records only the reply's text, so the reply itself (with its ``tool_calls`` and thinking) is
taken from the ``history`` entry holding that text. Steps without a query are the harness's
own (after a cost/context/format limit SWE-agent writes an assistant turn such as "Exit due to
cost limit" and autosubmits); they are not the model's and are left out, as is the
observation after the last reply (never sent). A file with no queries (SWE-agent 0.x) falls
back to ``history`` (the main agent's entries, up to its last reply).

Demonstrations: a demonstration SWE-agent sends as one user message (``message_type``
"demonstration") is kept — it was part of the prompt every reply was conditioned on, and as a
user turn it carries no loss. Demonstrations put into the history turn by turn
(``put_demos_in_history``) are dropped, with their count in ``demonstration_messages_dropped``:
their assistant turns are another run's (often a human's) actions on another task, and SFT
(``assistant_only_loss``) would train on them as the teacher's.

Function-calling configs give assistant turns OpenAI ``tool_calls`` (arguments a JSON string,
decoded to a dict here) and observations role "tool" with ``tool_call_ids`` (one per
observation). Tool schemas are not in a ``.traj`` (``replay_config`` names tool bundles, not
their schemas): they are read from a top-level ``tools`` list or ``replay_config``'s
``agent.tools.tools`` when a file has one, otherwise ``tools`` is empty and
``tool_schemas_missing`` is set in the metadata when the model did call tools.
"""
from __future__ import annotations

import json
import re
from typing import Any

from episodes.engine.trajectories.canonical import chat_message, normalize, text_of, tools_from_chat
from episodes.engine.trajectories.importers.base import ImportedEpisode, ImportFormatError, count_steps

ROLES = ("system", "user", "assistant", "tool")

# SWE-agent's exit statuses → Episode.exit_reason. "submitted (<status>)" is an autosubmission
# after <status> stopped the run; its reason is <status>. Anything else is an error.
EXIT_REASONS = {
    "submitted": "submitted",
    "exit_command": "finished",  # the agent ran `exit`
    "exit_forfeit": "finished",  # the agent gave up
    "early_exit": "finished",
    "exit_cost": "cost_limit",  # also the per-instance call limit
    "exit_context": "token_limit",
    "exit_step_limit": "step_limit",
    "exit_call_limit": "step_limit",
    "exit_total_execution_time": "time_limit",
}
AUTOSUBMITTED = re.compile(r"^submitted \((.+)\)$")


def parse(text: str, source: str = "<input>") -> ImportedEpisode:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ImportFormatError(f"{source}: not valid JSON ({e})") from None
    if isinstance(data, dict) and not _has_run(data) and isinstance(data.get("attempts"), list) and data["attempts"]:
        data = {**data["attempts"][-1], "attempts": data["attempts"]}  # a retry agent's file saved mid-run
    if not isinstance(data, dict) or not _has_run(data):
        hint = " — this looks like mini-swe-agent's format" if isinstance(data, dict) and "messages" in data else ""
        raise ImportFormatError(
            f"{source}: expected an object with a \"trajectory\" or \"history\" list (a SWE-agent .traj){hint}")
    steps = _steps(data, source)
    history = _history(data, source)
    config = _replay_config(data)
    model_config = _agent_config(config).get("model")
    model_config = model_config if isinstance(model_config, dict) else {}
    system_as_user = bool(model_config.get("convert_system_to_user"))

    queried = [(i, s) for i, s in enumerate(steps) if s.get("query")]
    dropped = 0
    if queried:
        index, step, reply = _last_reply(queried, history)
        prefix, dropped = _convert(step["query"], f"{source}: trajectory[{index}].query", system_as_user)
        if reply is not None:
            final, _ = _convert([reply[1]], f"{source}: history", system_as_user, indexes=[reply[0]])
        else:
            final = [_reply_of_step(step)]
        messages = prefix + final
        conversation_from = f"trajectory[{index}].query"
    elif history:
        main = _main_agent(history)
        last = max((i for i, m in main if m.get("role") == "assistant" and not m.get("is_demo")), default=None)
        if last is None:
            raise ImportFormatError(f"{source}: the history has no assistant turn (the model never answered)")
        messages, dropped = _convert([m for i, m in main if i <= last], f"{source}: history", system_as_user,
                                     indexes=[i for i, _ in main if i <= last])
        conversation_from = "history"
    else:
        raise ImportFormatError(f"{source}: no step has a query and there is no history (nothing the model saw)")
    if not any(m["role"] == "assistant" for m in messages):
        raise ImportFormatError(f"{source}: no assistant turn (the model never answered)")

    trajectory = {"messages": normalize(messages), "tools": _tools(data, config)}
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    stats = info.get("model_stats") if isinstance(info.get("model_stats"), dict) else {}
    exit_status = str(info.get("exit_status") or "")
    meta: dict[str, Any] = {
        "harness": "swe_agent",
        "model": model_config.get("name") or "",
        "cli_version": info.get("swe_agent_version"),
        "cli_commit": info.get("swe_agent_hash"),
        "swe_rex_version": info.get("swe_rex_version"),
        "environment": data.get("environment") if isinstance(data.get("environment"), str) else None,
        "cost_usd": stats.get("instance_cost"),
        "tokens_in": stats.get("tokens_sent"),
        "tokens_out": stats.get("tokens_received"),
        "api_calls": stats.get("api_calls"),
        "exit_status": exit_status,
        "submission": info.get("submission") or "",
        "steps": count_steps(trajectory["messages"]),
        "conversation_from": conversation_from,
    }
    if dropped:
        meta["demonstration_messages_dropped"] = dropped
    if isinstance(data.get("attempts"), list):
        meta["attempts"] = len(data["attempts"])
        meta["best_attempt_idx"] = info.get("best_attempt_idx")
    if not trajectory["tools"] and any(m.get("tool_calls") for m in trajectory["messages"]):
        meta["tool_schemas_missing"] = True
    meta["exit_reason"], error = _exit_reason(exit_status)
    if error:
        meta["error"] = error
    last = trajectory["messages"][-1]
    if last["role"] == "assistant":
        meta["final_message"] = last.get("content", "")
    # the steps as recorded, less each step's query (the whole conversation again, per step)
    events = [{k: v for k, v in s.items() if k != "query"} for s in steps] or history
    return ImportedEpisode(trajectory, meta, events)


# ---------------------------------------------------------------------------- reading the file
def _has_run(data: dict) -> bool:
    return isinstance(data.get("trajectory"), list) or isinstance(data.get("history"), list)


def _steps(data: dict, source: str) -> list[dict]:
    steps = data.get("trajectory")
    if steps is None:
        return []
    if not isinstance(steps, list):
        raise ImportFormatError(f"{source}: \"trajectory\" is not a list of steps")
    for i, s in enumerate(steps):
        if not isinstance(s, dict):
            raise ImportFormatError(f"{source}: trajectory[{i}] is not an object")
        if not isinstance(s.get("query", []), (list, type(None))):
            raise ImportFormatError(f"{source}: trajectory[{i}].query is not a list of messages")
        for j, m in enumerate(s.get("query") or ()):
            role = m.get("role") if isinstance(m, dict) else None
            if role not in ROLES:
                raise ImportFormatError(
                    f"{source}: trajectory[{i}].query[{j}] has role {role!r} (expected one of {', '.join(ROLES)})")
        if not isinstance(s.get("response", ""), (str, type(None))):
            raise ImportFormatError(f"{source}: trajectory[{i}].response is not text")
    return steps


def _history(data: dict, source: str) -> list[dict]:
    history = data.get("history")
    if history is None:
        return []
    if not isinstance(history, list):
        raise ImportFormatError(f"{source}: \"history\" is not a list of messages")
    for i, m in enumerate(history):
        if not isinstance(m, dict):
            raise ImportFormatError(f"{source}: history[{i}] is not an object")
        if m.get("role") not in ROLES:
            raise ImportFormatError(
                f"{source}: history[{i}] has role {m.get('role')!r} (expected one of {', '.join(ROLES)})")
    return history


def _replay_config(data: dict) -> dict:
    """``replay_config`` is the run's config dumped as a JSON string (an object in some tools)."""
    value = data.get("replay_config")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _agent_config(config: dict) -> dict:
    agent = config.get("agent") if isinstance(config.get("agent"), dict) else {}
    if agent.get("type") == "retry" and isinstance(agent.get("agent_configs"), list) and agent["agent_configs"]:
        first = agent["agent_configs"][0]
        return first if isinstance(first, dict) else {}
    return agent


def _tools(data: dict, config: dict) -> list[dict]:
    tools = data.get("tools")
    if not isinstance(tools, list):
        tool_config = _agent_config(config).get("tools")
        tools = tool_config.get("tools") if isinstance(tool_config, dict) else None
    return tools_from_chat([t for t in tools if isinstance(t, dict)]) if isinstance(tools, list) else []


def _main_agent(history: list[dict]) -> list[tuple[int, dict]]:
    """(index, entry) of the main agent's entries: the agent of the first entry (its system
    prompt); entries without an agent name (older files) belong to it."""
    name = next((m.get("agent") for m in history if m.get("agent")), None)
    return [(i, m) for i, m in enumerate(history) if m.get("agent") in (None, name)]


def _last_reply(queried: list[tuple[int, dict]], history: list[dict]) -> tuple[int, dict, tuple[int, dict] | None]:
    """The last model call whose reply the run kept: its step, and the history entry holding
    that reply (None without a history). A requery after a format error keeps only the
    corrected reply, so steps whose reply never reached the history are passed over."""
    if not history:
        index, step = queried[-1]
        return index, step, None
    replies = [(i, m) for i, m in _main_agent(history) if m.get("role") == "assistant" and not m.get("is_demo")]
    for index, step in reversed(queried):
        response = step.get("response") or ""
        match = next(((i, m) for i, m in reversed(replies) if text_of(m.get("content")) == response), None)
        if match is not None:
            return index, step, match
    index, step = queried[-1]
    return index, step, None


def _reply_of_step(step: dict) -> dict:
    message: dict = {"role": "assistant", "content": step.get("response") or ""}
    if isinstance(step.get("reasoning_content"), str) and step["reasoning_content"]:
        message["reasoning_content"] = step["reasoning_content"]
    return message


# ---------------------------------------------------------------------------- messages
def _convert(items: list, where: str, system_as_user: bool, indexes: list[int] | None = None) -> tuple[list[dict], int]:
    """SWE-agent history entries → canonical messages, as the model was sent them (SWE-agent's
    ``_history_to_messages``): ``tool_call_ids[0]`` answers the call, ``system`` becomes
    ``user`` when the model config says so. Returns (messages, demonstration entries dropped)."""
    out: list[dict] = []
    dropped = 0
    for n, m in enumerate(items):
        label = f"{where}[{indexes[n] if indexes else n}]"
        if not isinstance(m, dict):
            raise ImportFormatError(f"{label} is not an object")
        role = m.get("role")
        if role not in ROLES:
            raise ImportFormatError(f"{label} has role {role!r} (expected one of {', '.join(ROLES)})")
        if not isinstance(m.get("content"), (str, list, dict, type(None))):
            raise ImportFormatError(f"{label} content is neither text nor content parts")
        if m.get("is_demo") and m.get("message_type") != "demonstration":
            dropped += 1  # a demonstration turn put into the history (see the module docstring)
            continue
        if role == "tool":
            ids = m.get("tool_call_ids")
            call_id = ids[0] if isinstance(ids, list) and ids else m.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise ImportFormatError(f"{label} is a tool observation without tool_call_ids")
            out.append({"role": "tool", "tool_call_id": call_id, "content": text_of(m.get("content"))})
            continue
        if role == "assistant":
            calls = m.get("tool_calls")
            if calls is not None and not (isinstance(calls, list) and all(isinstance(c, dict) for c in calls)):
                raise ImportFormatError(f"{label} tool_calls is not a list of calls")
            message = chat_message({"role": "assistant", "content": m.get("content"), "tool_calls": calls or None,
                                    "reasoning_content": m.get("reasoning_content") or _thinking(m)})
            out.append(message)
            continue
        if role == "system" and system_as_user:
            role = "user"
        out.append({"role": role, "content": text_of(m.get("content"))})
    return out, dropped


def _thinking(m: dict) -> str:
    blocks = m.get("thinking_blocks")
    if not isinstance(blocks, list):
        return ""
    return "\n".join(b.get("thinking") or "" for b in blocks if isinstance(b, dict) and b.get("thinking"))


def _exit_reason(exit_status: str) -> tuple[str, str]:
    """(Episode.exit_reason, error or "")."""
    status = exit_status.strip()
    autosubmitted = AUTOSUBMITTED.match(status)
    inner = autosubmitted.group(1) if autosubmitted else status
    if not inner:
        return "error", "SWE-agent recorded no exit status (the run did not finish)"
    reason = EXIT_REASONS.get(inner.lower())
    if reason is None:
        return "error", f"SWE-agent exited with {status}"
    return reason, ""
