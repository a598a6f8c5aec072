"""Codex CLI rollouts (``~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl``).

Lines are ``{"timestamp", "type", "payload"}``. ``response_item`` payloads are Responses API
items (message, reasoning, function_call, function_call_output, custom_tool_call…) — the
conversation, in order. ``event_msg`` lines repeat tool output and messages for display, so
they are read for metadata only (one copy of each tool output is kept: the response item's).
``session_meta`` gives the base instructions (the system prompt) when the version logs them;
``turn_context`` the model. Rollouts do not record tool schemas, so ``tools`` is empty.
Unknown line types are skipped and counted; a line that is not JSON, lacks ``type`` or
``payload``, or a ``response_item`` that is not an item, is an error naming the line.
"""
from __future__ import annotations

from episodes.engine.llm.usage import read_usage
from episodes.engine.trajectories.canonical import items_to_messages, normalize
from episodes.engine.trajectories.importers.base import ImportedEpisode, ImportFormatError, count_steps, json_lines


def parse(text: str, source: str = "<input>") -> ImportedEpisode:
    rows = json_lines(text, source)
    items: list[dict] = []
    meta: dict = {"harness": "codex"}
    system = ""
    skipped = 0
    for n, line in rows:
        kind, payload = line.get("type"), line.get("payload")
        if not isinstance(kind, str) or not isinstance(payload, dict):
            raise ImportFormatError(f"{source} line {n}: expected {{timestamp, type, payload}} with an object payload")
        meta.setdefault("started_at", line.get("timestamp"))
        meta["finished_at"] = line.get("timestamp") or meta.get("finished_at")
        if kind == "response_item":
            if not isinstance(payload.get("type"), str):
                raise ImportFormatError(f"{source} line {n}: a response_item without an item type")
            items.append(payload)
        elif kind == "session_meta":
            meta["session_id"] = payload.get("id") or payload.get("session_id")
            meta["cwd"] = payload.get("cwd")
            meta["cli_version"] = payload.get("cli_version")
            meta["provider"] = payload.get("model_provider")
            base = payload.get("base_instructions") or payload.get("instructions")
            system = base.get("text", "") if isinstance(base, dict) else (base or "")
        elif kind == "turn_context":
            meta["model"] = payload.get("model") or meta.get("model")
        elif kind == "event_msg":
            _event(payload, meta)
        else:
            skipped += 1
    if not items:
        raise ImportFormatError(f"{source}: no response_item lines (is this a Codex rollout?)")
    messages = items_to_messages(items)
    if system:
        messages.insert(0, {"role": "system", "content": system})
    trajectory = {"messages": normalize(messages), "tools": []}
    meta["skipped_lines"] = skipped
    meta["exit_reason"] = "error" if meta.get("error") else "finished"
    meta["steps"] = count_steps(trajectory["messages"])
    return ImportedEpisode(trajectory, meta, [line for _, line in rows])


def _event(payload: dict, meta: dict) -> None:
    kind = payload.get("type")
    if kind == "token_count" and isinstance(payload.get("info"), dict):
        total = read_usage("openai_responses", payload["info"].get("total_token_usage"))
        meta["tokens_in"], meta["tokens_out"] = total.tokens_in, total.tokens_out
    elif kind == "task_complete":
        meta["final_message"] = payload.get("last_agent_message") or ""
        meta.pop("error", None)
    elif kind in ("error", "stream_error", "turn_aborted"):
        meta["error"] = payload.get("message") or payload.get("reason") or kind
