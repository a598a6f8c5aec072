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
* ``attachment`` entries with ``rendered`` text are the system reminders the CLI sent with a
  user turn (environment, date, token budget…): they are folded back into that turn;
* entry types we do not know are skipped (counted in ``metadata["skipped_entries"]``), but a
  line that is not JSON, or a conversation entry without a usable ``message``, is an error
  naming the line;
* recent versions log the exact request shape (``api-request-shape``: system prompt and tool
  schemas); when present it gives the system message and ``tools``, otherwise the trajectory
  has no system prompt and no tool schemas (the notes explain why a gateway is the exact source).
"""
from __future__ import annotations

from episodes.engine.llm.usage import usage_of
from episodes.engine.trajectories.canonical import anthropic_assistant, anthropic_user, anthropic_system, normalize, tools_from_anthropic
from episodes.engine.trajectories.importers.base import ImportedEpisode, ImportFormatError, count_steps, json_lines

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
    chain: list[dict] = []
    for _, leaf in sorted(leaves, key=lambda ne: (ne[1].get("timestamp") or "", ne[0]), reverse=True):
        chain = _walk(leaf, nodes, source)
        turns = [e for e in chain if e.get("type") in CONVERSATION]
        if turns:
            break
    if not turns:
        raise ImportFormatError(f"{source}: no main-chain user/assistant entries (is this a Claude Code session log?)")

    messages: list[dict] = []
    if shape and shape.get("system"):
        messages.append({"role": "system", "content": anthropic_system(shape["system"])})
    for kind, content in _wire_turns(chain):
        messages.extend([anthropic_assistant(content)] if kind == "assistant" else anthropic_user(content))
    events = [e for _, e in rows]
    trajectory = {"messages": normalize(messages), "tools": tools_from_anthropic((shape or {}).get("tools"))}
    return ImportedEpisode(trajectory, _metadata(rows, turns, trajectory, skipped), events)


def _blocks(content) -> list[dict]:
    return list(content) if isinstance(content, list) else [{"type": "text", "text": content}]


REMINDER_OPEN, REMINDER_CLOSE = "<system-reminder>\n", "\n</system-reminder>"


def _model_of(chain: list[dict]) -> str:
    for entry in chain:
        model = (entry.get("message") or {}).get("model") if entry.get("type") == "assistant" else None
        if model and model != "<synthetic>":
            return model
    return ""


def _wire_turns(chain: list[dict]) -> list[tuple[str, list[dict]]]:
    """The chain as the turns the model was sent: one assistant turn per response (a response
    may be logged as several entries sharing ``message.id``), and the system reminders that
    attachments rendered folded back where the CLI puts them on the wire. Where that is
    depends on the model (checked against the gateway's record of the same runs, Claude Code
    2.1; ``tests/solving/test_cli_teachers.py`` and ``tests/trajectories/test_runners.py``):

    * Claude models: every reminder rides in the user turn it came with, wrapped in
      ``<system-reminder>``: as text blocks before the turn's text, or, in a turn of tool
      results, appended to the last result's content (trailing whitespace off) after a blank
      line;
    * other models (an open model behind the gateway): ``renderedRole: user`` reminders ride
      in the turn as above; ``renderedRole: system`` ones become one system-role message right
      after the turn, unwrapped, joined by blank lines (the canonical form, like the
      gateway's, makes that a user turn).

    A reminder rendered beside a tool result gets the newline the CLI adds."""
    inline = _model_of(chain).startswith("claude")
    turns: list[tuple[str, list[dict]] | dict] = []
    last_id = None
    reminders: list[str] = []
    system: list[str] = []

    def flush():
        if turns and isinstance(turns[-1], dict):
            turns[-1]["reminders"].extend(reminders)
            turns[-1]["system"].extend(system)
        reminders.clear()
        system.clear()

    for entry in chain:
        kind = entry.get("type")
        if kind == "attachment" and isinstance(entry.get("rendered"), list):
            for r in entry["rendered"]:
                if not (isinstance(r, dict) and isinstance(r.get("content"), str)):
                    continue
                if entry.get("renderedRole") == "system" and not inline:
                    system.append(r["content"].removeprefix(REMINDER_OPEN).removesuffix(REMINDER_CLOSE))
                else:
                    reminders.append(r["content"] + ("\n" if entry.get("renderedBesideToolResult") else ""))
        elif kind == "assistant":
            flush()
            message = entry["message"]
            if message.get("id") and message.get("id") == last_id and turns and not isinstance(turns[-1], dict):
                turns[-1][1].extend(_blocks(message["content"]))
            else:
                turns.append(("assistant", _blocks(message["content"])))
            last_id = message.get("id")
        elif kind == "user":
            flush()
            blocks = _blocks(entry["message"]["content"])
            is_result = [isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks]
            turns.append({"results": [dict(b) for b, r in zip(blocks, is_result) if r], "reminders": [], "system": [],
                          "others": [b for b, r in zip(blocks, is_result) if not r]})
            last_id = None
    flush()
    out: list[tuple[str, list[dict]]] = []
    for t in turns:
        if not isinstance(t, dict):
            out.append(t)
            continue
        results, reminders_ = t["results"], t["reminders"]
        if inline and results and reminders_ and isinstance(results[-1].get("content"), str):
            results[-1]["content"] = "\n\n".join([results[-1]["content"].rstrip(), *reminders_])
            reminders_ = []
        out.append(("user", results + [{"type": "text", "text": r} for r in reminders_] + t["others"]))
        if t["system"]:
            out.append(("user", [{"type": "text", "text": "\n\n".join(t["system"])}]))
    return out


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
            if m.get("id") not in seen_ids:  # a response split over entries repeats its usage
                seen_ids.add(m.get("id"))
                usage = usage_of("anthropic", m)
                tokens_in += usage.tokens_in
                tokens_out += usage.tokens_out
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
