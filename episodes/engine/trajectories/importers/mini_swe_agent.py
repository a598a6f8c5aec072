"""mini-swe-agent trajectories (``*.traj.json``).

    {"info": {"model_stats": {"instance_cost", "api_calls"}, "config": {...}, "exit_status",
              "submission", "mini_version"},
     "messages": [OpenAI chat messages, each with an "extra" dict], "trajectory_format": "mini-swe-agent-1.1"}

The messages are what the model was sent (mini-swe-agent's loop is linear), so they convert
one for one: ``extra`` (raw responses, timestamps) is stripped and the final ``exit`` message
(the harness recording why it stopped, never shown to the model) is dropped. The classic
agent acts through ```bash blocks in plain text, so most trajectories have no tool calls;
newer tool-calling ones keep theirs. ``info.submission`` is the agent's final diff.
"""
from __future__ import annotations

import json

from episodes.engine.trajectories.canonical import chat_message, normalize, tools_from_chat
from episodes.engine.trajectories.importers.base import ImportedEpisode, ImportFormatError, count_steps

ROLES = ("system", "user", "assistant", "tool", "developer", "exit")
# mini-swe-agent's exit statuses → Episode.exit_reason; anything else (an exception's name) is an error.
# LimitsExceeded covers both its step and cost limits; it does not say which.
EXIT_REASONS = {"submitted": "submitted", "limitsexceeded": "step_limit", "": "finished"}


def parse(text: str, source: str = "<input>") -> ImportedEpisode:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ImportFormatError(f"{source}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise ImportFormatError(f"{source}: expected an object with a \"messages\" list (a mini-swe-agent .traj.json)")
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    messages = []
    for i, m in enumerate(data["messages"]):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            role = m.get("role") if isinstance(m, dict) else None
            raise ImportFormatError(f"{source}: messages[{i}] has role {role!r} (expected one of {', '.join(ROLES)})")
        if m["role"] == "exit":
            continue
        if not isinstance(m.get("content"), (str, list, type(None))):
            raise ImportFormatError(f"{source}: messages[{i}] content is neither text nor content parts")
        messages.append(chat_message({k: v for k, v in m.items() if k != "extra"}))
    if not messages:
        raise ImportFormatError(f"{source}: no messages besides the exit record")
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    model_config = config.get("model") if isinstance(config.get("model"), dict) else {}
    stats = info.get("model_stats") if isinstance(info.get("model_stats"), dict) else {}
    tools = tools_from_chat(data.get("tools") or model_config.get("tools"))
    trajectory = {"messages": normalize(messages), "tools": tools}
    exit_status = str(info.get("exit_status") or "")
    meta = {
        "harness": "mini_swe_agent",
        "model": model_config.get("model_name") or model_config.get("model") or "",
        "cli_version": info.get("mini_version"),
        "cost_usd": stats.get("instance_cost"),
        "api_calls": stats.get("api_calls"),
        "exit_status": exit_status,
        "submission": info.get("submission") or "",
        "steps": count_steps(trajectory["messages"]),
        "trajectory_format": data.get("trajectory_format"),
    }
    meta["exit_reason"] = EXIT_REASONS.get(exit_status.lower(), "error")
    if meta["exit_reason"] == "error":
        meta["error"] = f"mini-swe-agent exited with {exit_status}"
    last = trajectory["messages"][-1]
    if last["role"] == "assistant":
        meta["final_message"] = last.get("content", "")
    return ImportedEpisode(trajectory, meta, data["messages"])
