"""Claude Code session logs (``~/.claude/projects/<mangled cwd>/<sessionId>.jsonl``).

Each line is an entry with an envelope (``uuid``, ``parentUuid``, ``sessionId``, ``timestamp``,
``isSidechain``, ``type``). Conversation entries (``user`` / ``assistant``) carry ``message`` in
Anthropic Messages shape; many other entry types (attachments, queue operations, cost state,
request shapes…) are the CLI's bookkeeping. The format is internal and changes between
versions, so:

* the conversation is the ``parentUuid`` chain ending at the newest main-chain leaf — not file
  order (rewinds and edits leave abandoned branches in the file, and entries can be written
  out of order); sidechains (sub-agents run by the Task tool) are not part of it;
* one API response may be logged as several ``assistant`` entries (one per content block)
  sharing ``message.id``: they are one assistant turn;
* entry types we do not know are skipped (counted in ``metadata["skipped_entries"]``), but a
  line that is not JSON, or a conversation entry without a usable ``message``, is an error
  naming the line;
* recent versions log the exact request shape (``api-request-shape``: system prompt and tool
  schemas); when present it gives the system message and ``tools``, otherwise the trajectory
  has no system prompt and no tool schemas (the notes explain why a gateway is the exact source).
"""
from __future__ import annotations

from ..trajectory import anthropic_assistant, anthropic_user, anthropic_system, normalize, tools_from_anthropic
from .base import ImportedEpisode, ImportFormatError, count_steps, json_lines

CONVERSATION = ("user", "assistant")


def parse(text: str, source: str = "<input>") -> ImportedEpisode:
    rows = json_lines(text, source)
    nodes: dict[str, tuple[int, dict]] = {}
    children: dict[str, int] = {}
    shape = None
    skipped = 0
    for n, entry in rows:
        kind = entry.get("type")
        if kind in CONVERSATION:
            message = entry.get("message")
            if not isinstance(message, dict) or "content" not in message:
                raise ImportFormatError(f"{source} line {n}: a {kind} entry without a message with content")
            if not entry.get("uuid"):
                raise ImportFormatError(f"{source} line {n}: a {kind} entry without a uuid")
        if entry.get("uuid"):
            if entry["uuid"] in nodes:
                raise ImportFormatError(f"{source} line {n}: uuid {entry['uuid']} already used on line {nodes[entry['uuid']][0]}")
            nodes[entry["uuid"]] = (n, entry)
            parent = entry.get("parentUuid")
            if parent and not entry.get("isSidechain"):
                children[parent] = children.get(parent, 0) + 1
        elif kind == "api-request-shape" and isinstance(entry.get("shape"), dict):
            shape = entry["shape"]
        else:
            skipped += 1
    # Leaves of the main chain (any entry type: bookkeeping entries hang off the last turn
    # too); the newest one is the conversation as it stands. Timestamps are ISO-8601 UTC, so
    # they sort as strings; the line number breaks ties.
    leaves = [(n, e) for n, e in nodes.values() if not e.get("isSidechain") and not children.get(e["uuid"])]
    turns: list[dict] = []
    for _, leaf in sorted(leaves, key=lambda ne: (ne[1].get("timestamp") or "", ne[0]), reverse=True):
        turns = [e for e in _walk(leaf, nodes, source) if e.get("type") in CONVERSATION]
        if turns:
            break
    if not turns:
        raise ImportFormatError(f"{source}: no main-chain user/assistant entries (is this a Claude Code session log?)")

    messages: list[dict] = []
    if shape and shape.get("system"):
        messages.append({"role": "system", "content": anthropic_system(shape["system"])})
    i = 0
    while i < len(turns):
        entry = turns[i]
        message = entry["message"]
        if entry["type"] == "assistant":
            # blocks of one response logged as several entries: merge them back
            content = list(message["content"]) if isinstance(message["content"], list) else [
                {"type": "text", "text": message["content"]}]
            while (i + 1 < len(turns) and turns[i + 1]["type"] == "assistant" and message.get("id")
                   and turns[i + 1]["message"].get("id") == message.get("id")):
                i += 1
                more = turns[i]["message"]["content"]
                content += more if isinstance(more, list) else [{"type": "text", "text": more}]
            messages.append(anthropic_assistant(content))
        else:
            messages.extend(anthropic_user(message["content"]))
        i += 1
    events = [e for _, e in rows]
    trajectory = {"messages": normalize(messages), "tools": tools_from_anthropic((shape or {}).get("tools"))}
    return ImportedEpisode(trajectory, _metadata(rows, turns, trajectory, skipped), events)


def _walk(leaf: dict, nodes: dict, source: str) -> list[dict]:
    chain, seen = [], set()
    entry = leaf
    while entry is not None:
        if entry["uuid"] in seen:
            raise ImportFormatError(f"{source}: parentUuid cycle at {entry['uuid']}")
        seen.add(entry["uuid"])
        chain.append(entry)
        parent = entry.get("parentUuid")
        if not parent:
            break
        if parent not in nodes:
            line = nodes[entry["uuid"]][0]
            raise ImportFormatError(f"{source} line {line}: parentUuid {parent} is not in the file (truncated log?)")
        entry = nodes[parent][1]
    chain.reverse()
    return chain


def _metadata(rows, turns, trajectory, skipped) -> dict:
    meta: dict = {"harness": "claude_code", "skipped_entries": skipped, "steps": count_steps(trajectory["messages"])}
    tokens_in = tokens_out = 0
    seen_ids = set()
    for e in turns:
        m = e["message"]
        meta.setdefault("session_id", e.get("sessionId"))
        meta.setdefault("cwd", e.get("cwd"))
        meta.setdefault("cli_version", e.get("version"))
        meta.setdefault("started_at", e.get("timestamp"))
        meta["finished_at"] = e.get("timestamp") or meta.get("finished_at")
        if e["type"] == "assistant":
            if m.get("model") and m["model"] != "<synthetic>":
                meta["model"] = m["model"]
            usage = m.get("usage") or {}
            if m.get("id") not in seen_ids:  # a response split over entries repeats its usage
                seen_ids.add(m.get("id"))
                tokens_in += (usage.get("input_tokens") or 0) + (usage.get("cache_read_input_tokens") or 0) + (
                    usage.get("cache_creation_input_tokens") or 0)
                tokens_out += usage.get("output_tokens") or 0
            if e.get("isApiErrorMessage"):
                meta["error"] = _text(m.get("content"))[:500] or "API error"
    meta["tokens_in"], meta["tokens_out"] = tokens_in, tokens_out
    for _, e in rows:
        if e.get("type") == "cost-state" and e.get("totalCostUSD") is not None:
            meta["cost_usd"] = e["totalCostUSD"]
    last = trajectory["messages"][-1] if trajectory["messages"] else {}
    if last.get("role") == "assistant":
        meta["final_message"] = last.get("content", "")
    meta["exit_reason"] = "error" if meta.get("error") else "finished"
    return meta


def _text(content) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content or () if isinstance(b, dict))
