"""The canonical trajectory: what a teacher saw and did, as Hugging Face chat data (no Django).

    {"messages": [{"role": "system"|"user"|"assistant"|"tool", "content": str, ...}],
     "tools":    [{"type": "function", "function": {"name", "description", "parameters"}}]}

Assistant turns carry ``tool_calls`` (``[{"id", "type": "function", "function": {"name",
"arguments": dict}}]``, arguments as a dict because that is what chat templates expect) and,
when the model showed its thinking, ``reasoning_content``. A tool result is its own
``{"role": "tool", "tool_call_id", "content"}`` message. This is what TRL's SFTTrainer reads.

``canonical_from_calls`` derives it from the calls the recording gateway stored for an episode
(each ``{"protocol", "path", "request", "response"}``, in sequence order): the episode's
conversation is the main agent's longest complete one among them (side calls such as Claude
Code's title or summary requests, token counting, failed attempts and sub-agents are not it),
i.e. that call's request messages followed by its response as the final assistant turn. The three wire protocols are
converted by ``messages_from_anthropic`` / ``messages_from_chat`` / ``items_to_messages``,
which the importers reuse for logs recorded elsewhere.

``check_canonical`` lists what is wrong with a trajectory (used by tests and the SFT builder).
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from episodes.engine.llm.tool_args import tool_arguments_or_as_sent

ROLES = ("system", "user", "assistant", "tool")
IMAGE_PLACEHOLDER = "[image]"
# Claude Code prepends a billing/attribution line to its system prompt; the API consumes it
# and the model never reads it as instructions, so it is not part of the training text.
ANTHROPIC_BILLING_PREFIX = "x-anthropic-billing-header:"


class TrajectoryError(ValueError):
    """The recorded calls hold no conversation that can be converted."""


# ---------------------------------------------------------------------------- small helpers
# A call's arguments as a dict, or as the model sent them when they are not a JSON object, so
# ``check_canonical`` reports the model's bad call (see ``llm.tool_args``).
decode_arguments = tool_arguments_or_as_sent


def tool_call(call_id: str, name: str, arguments: Any) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": decode_arguments(arguments)}}


def text_of(content: Any, sep: str = "\n") -> str:
    """Plain text of a message content: a string, or a list of content parts in any of the
    three protocols' shapes (text / input_text / output_text / summary_text; images become a
    placeholder)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif not isinstance(part, dict):
            continue
        elif part.get("type") in ("text", "input_text", "output_text", "summary_text", "reasoning_text") or (
            "type" not in part and "text" in part
        ):
            parts.append(part.get("text") or "")
        elif part.get("type") in ("image", "input_image", "image_url"):
            parts.append(IMAGE_PLACEHOLDER)
        elif part.get("type") == "refusal":
            parts.append(part.get("refusal") or "")
    return sep.join(parts)


def _assistant(content: str = "", tool_calls: list | None = None, reasoning: str = "") -> dict:
    message: dict = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = reasoning
    return message


def normalize(messages: list[dict]) -> list[dict]:
    """Merge leading system messages into one (chat templates expect at most one, first) and
    drop empty user/system turns that carried nothing but stripped metadata."""
    out: list[dict] = []
    for m in messages:
        if m["role"] in ("system", "user") and not m.get("content"):
            continue
        if m["role"] == "system" and out and all(p["role"] == "system" for p in out):
            out[-1] = {"role": "system", "content": out[-1]["content"] + "\n\n" + m["content"]}
            continue
        out.append(m)
    return out


# ---------------------------------------------------------------------------- Anthropic
def anthropic_system(system: Any) -> str:
    if isinstance(system, str):
        return system
    texts = [b.get("text", "") for b in system or () if isinstance(b, dict)]
    return "\n".join(t for t in texts if not t.startswith(ANTHROPIC_BILLING_PREFIX))


def anthropic_assistant(content: Any) -> dict:
    """One Anthropic assistant message (its content blocks) as a canonical assistant turn."""
    if isinstance(content, str):
        return _assistant(content)
    texts, reasoning, calls = [], [], []
    for block in content or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
        elif kind == "tool_use":
            calls.append(tool_call(block.get("id", ""), block.get("name", ""), block.get("input")))
        # redacted_thinking (opaque), server tool blocks: nothing a student model can learn from
    return _assistant("\n".join(texts), calls, "\n".join(r for r in reasoning if r))


def anthropic_user(content: Any) -> list[dict]:
    """One Anthropic user message: each tool_result becomes a tool message, before the
    remaining text (which is what the model read after the results)."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools, texts = [], []
    for block in content or ():
        kind = block.get("type")
        if kind == "tool_result":
            tools.append({"role": "tool", "tool_call_id": block.get("tool_use_id", ""),
                          "content": text_of(block.get("content"))})
        elif kind == "text":
            texts.append(block.get("text", ""))
        elif kind in ("image", "document"):
            texts.append(IMAGE_PLACEHOLDER if kind == "image" else "[document]")
    out = tools
    if texts:
        out.append({"role": "user", "content": "\n".join(texts)})
    return out


def messages_from_anthropic(system: Any, messages: Iterable[dict]) -> list[dict]:
    out = []
    system_text = anthropic_system(system)
    if system_text:
        out.append({"role": "system", "content": system_text})
    for m in messages:
        if m.get("role") == "assistant":
            out.append(anthropic_assistant(m.get("content")))
        else:
            out.extend(anthropic_user(m.get("content")))
    return out


def tools_from_anthropic(tools: Iterable[dict] | None) -> list[dict]:
    out = []
    for t in tools or ():
        # Server tools (web search…) have no input_schema; deferred tools are not loaded into
        # the model's context until searched for, so the model never saw their schema.
        if "input_schema" not in t or t.get("defer_loading"):
            continue
        out.append({"type": "function", "function": {
            "name": t["name"], "description": t.get("description", ""), "parameters": t["input_schema"]}})
    return out


# ---------------------------------------------------------------------------- OpenAI Chat
def chat_message(m: dict) -> dict:
    role = m.get("role")
    if role == "developer":
        role = "system"
    if role == "assistant":
        calls = [
            tool_call(c.get("id", ""), (c.get("function") or {}).get("name", ""), (c.get("function") or {}).get("arguments"))
            for c in m.get("tool_calls") or ()
        ]
        if m.get("function_call"):  # the deprecated single-function form
            fc = m["function_call"]
            calls.append(tool_call("call_0", fc.get("name", ""), fc.get("arguments")))
        reasoning = m.get("reasoning_content") or m.get("reasoning") or ""
        return _assistant(text_of(m.get("content")), calls, reasoning if isinstance(reasoning, str) else "")
    if role in ("tool", "function"):
        return {"role": "tool", "tool_call_id": m.get("tool_call_id", ""), "content": text_of(m.get("content"))}
    return {"role": role, "content": text_of(m.get("content"))}


def messages_from_chat(messages: Iterable[dict]) -> list[dict]:
    return [chat_message(m) for m in messages]


def tools_from_chat(tools: Iterable[dict] | None, functions: Iterable[dict] | None = None) -> list[dict]:
    out = []
    for t in tools or ():
        fn = t.get("function") if t.get("type", "function") == "function" else None
        if fn and fn.get("name"):
            out.append({"type": "function", "function": {
                "name": fn["name"], "description": fn.get("description", ""),
                "parameters": fn.get("parameters") or {"type": "object", "properties": {}}}})
    for fn in functions or ():
        out.append({"type": "function", "function": {
            "name": fn["name"], "description": fn.get("description", ""),
            "parameters": fn.get("parameters") or {"type": "object", "properties": {}}}})
    return out


# ---------------------------------------------------------------------------- OpenAI Responses
ASSISTANT_ITEMS = ("reasoning", "function_call", "custom_tool_call", "local_shell_call")


def items_to_messages(items: Iterable[dict] | str) -> list[dict]:
    """Responses API items (input or output) → canonical messages. Consecutive model-side
    items (reasoning, an assistant message, function calls) form one assistant turn."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[dict] = []
    current: dict | None = None  # the assistant turn being assembled

    def turn() -> dict:
        nonlocal current
        if current is None:
            current = _assistant()
            out.append(current)
        return current

    for item in items:
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message" and item.get("role") == "assistant":
            a = turn()
            text = text_of(item.get("content"))
            a["content"] = f"{a['content']}\n{text}" if a["content"] else text
        elif kind == "reasoning":
            text = text_of(item.get("summary")) or text_of(item.get("content"))
            if text:
                a = turn()
                a["reasoning_content"] = (a.get("reasoning_content", "") + "\n" + text).strip("\n")
        elif kind == "function_call":
            turn().setdefault("tool_calls", []).append(
                tool_call(item.get("call_id") or item.get("id", ""), item.get("name", ""), item.get("arguments")))
        elif kind == "custom_tool_call":  # free-form tools (e.g. apply_patch): the text is the input
            turn().setdefault("tool_calls", []).append(
                tool_call(item.get("call_id") or item.get("id", ""), item.get("name", ""), {"input": item.get("input", "")}))
        elif kind == "local_shell_call":
            action = item.get("action") or {}
            turn().setdefault("tool_calls", []).append(
                tool_call(item.get("call_id") or item.get("id", ""), "local_shell", action))
        elif kind in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
            current = None
            output = item.get("output")
            out.append({"role": "tool", "tool_call_id": item.get("call_id", ""),
                        "content": output if isinstance(output, str) else text_of(output)})
        elif kind == "message":
            current = None
            role = "system" if item.get("role") in ("developer", "system") else "user"
            out.append({"role": role, "content": text_of(item.get("content"))})
        # other item kinds (web_search_call, image_generation_call, compaction…) carry nothing
        # a chat template can render; the raw call keeps them.
    return out


def tools_from_responses(tools: Iterable[dict] | None) -> list[dict]:
    out = []
    for t in tools or ():
        kind = t.get("type")
        if kind == "function":
            out.append({"type": "function", "function": {
                "name": t["name"], "description": t.get("description", ""),
                "parameters": t.get("parameters") or {"type": "object", "properties": {}}}})
        elif kind == "custom":
            out.append({"type": "function", "function": {
                "name": t["name"], "description": t.get("description", ""),
                "parameters": {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}}})
        elif kind == "namespace":
            out.extend(tools_from_responses(t.get("tools")))
        # built-in tools (web_search, file_search…) have no schema the student could call
    return out


# ---------------------------------------------------------------------------- recorded calls
def _request_length(call: dict) -> int:
    request = call.get("request") or {}
    if call.get("protocol") == "openai_responses":
        items = request.get("input")
        return 1 if isinstance(items, str) else len(items or ())
    return len(request.get("messages") or ())


def _completed(call: dict) -> bool:
    """A call whose reply the agent actually received: a success with a response body."""
    status = call.get("status_code")
    if status is not None and not 200 <= int(status) < 300:
        return False
    if call.get("error"):
        return False
    path = (call.get("path") or "").split("?")[0]
    if path.endswith("count_tokens"):
        return False
    response = call.get("response")
    if not isinstance(response, dict) or response.get("type") == "error":
        return False
    if call.get("protocol") == "openai_chat":
        return bool(response.get("choices"))
    if call.get("protocol") == "anthropic":
        return isinstance(response.get("content"), list)
    return isinstance(response.get("output"), list)


def conversation_of_call(call: dict, by_response_id: dict | None = None) -> dict:
    """One recorded call as a canonical trajectory: its request, then its response."""
    protocol, request, response = call.get("protocol"), call.get("request") or {}, call.get("response") or {}
    if protocol == "anthropic":
        messages = messages_from_anthropic(request.get("system"), request.get("messages") or ())
        messages.append(anthropic_assistant(response.get("content")))
        tools = tools_from_anthropic(request.get("tools"))
    elif protocol == "openai_chat":
        messages = messages_from_chat(request.get("messages") or ())
        choice = (response.get("choices") or [{}])[0]
        messages.append(chat_message({"role": "assistant", **(choice.get("message") or {})}))
        tools = tools_from_chat(request.get("tools"), request.get("functions"))
    elif protocol == "openai_responses":
        messages = []
        previous = (by_response_id or {}).get(request.get("previous_response_id"))
        if previous is not None and previous is not call:  # stateful chains: the server held the history
            messages = [m for m in conversation_of_call(previous, by_response_id)["messages"] if m["role"] != "system"]
        if request.get("instructions"):
            messages.insert(0, {"role": "system", "content": request["instructions"]})
        messages += items_to_messages(request.get("input") or [])
        reply = items_to_messages(response.get("output") or [])
        messages += reply or [_assistant()]
        tools = tools_from_responses(request.get("tools"))
    else:
        raise TrajectoryError(f"unknown protocol {protocol!r}")
    return {"messages": normalize(messages), "tools": tools}


def response_message(call: dict) -> dict | None:
    """The canonical assistant turn a call's response became (None when it has none): lets a
    viewer find which recorded call produced each step of the trajectory."""
    if not _completed(call):
        return None
    response = call.get("response") or {}
    protocol = call.get("protocol")
    if protocol == "anthropic":
        return anthropic_assistant(response.get("content"))
    if protocol == "openai_chat":
        choice = (response.get("choices") or [{}])[0]
        return chat_message({"role": "assistant", **(choice.get("message") or {})})
    reply = [m for m in items_to_messages(response.get("output") or []) if m["role"] == "assistant"]
    return reply[-1] if reply else None


def step_key(message: dict) -> str:
    """What identifies an assistant turn across a trajectory and the call that produced it."""
    ids = [c.get("id") for c in message.get("tool_calls") or ()]
    return json.dumps([ids, message.get("content") or ""] if ids else ["text", message.get("content") or ""])


def _offers_tools(call: dict) -> bool:
    request = call.get("request") or {}
    return bool(request.get("tools") or request.get("functions"))


def _thread_key(call: dict) -> tuple:
    """What tells the main agent's calls from a sub-agent's (Claude Code's Task tool, Codex's
    spawned agents): each agent has its own system prompt."""
    request = call.get("request") or {}
    protocol = call.get("protocol")
    if protocol == "anthropic":
        return protocol, anthropic_system(request.get("system"))
    if protocol == "openai_chat":
        first = (request.get("messages") or [{}])[0]
        return protocol, text_of(first.get("content")) if first.get("role") in ("system", "developer") else ""
    items = request.get("input")
    first = items[0] if isinstance(items, list) and items else {}
    developer = text_of(first.get("content")) if first.get("role") in ("system", "developer") else ""
    return protocol, request.get("instructions") or "", developer


def canonical_from_calls(calls: list[dict]) -> dict:
    """The episode's conversation: among the main agent's complete calls, the longest (ties go
    to the later one). The main agent is the one that made the first call offering tools;
    side calls without tools (titles, summaries) and sub-agents (another system prompt) are
    not it, even when a sub-agent's conversation ran longer."""
    complete = [c for c in calls if _completed(c)]
    if not complete:
        raise TrajectoryError(f"none of the {len(calls)} recorded call(s) completed with a reply")
    first_agent_call = next((c for c in complete if _offers_tools(c)), complete[0])
    main = [c for c in complete if _thread_key(c) == _thread_key(first_agent_call)]
    by_response_id = {
        (c.get("response") or {}).get("id"): c
        for c in complete if c.get("protocol") == "openai_responses" and (c.get("response") or {}).get("id")
    }
    best = max(enumerate(main), key=lambda ic: (_chain_length(ic[1], by_response_id), ic[0]))[1]
    return conversation_of_call(best, by_response_id)


def _chain_length(call: dict, by_response_id: dict, depth: int = 0) -> int:
    length = _request_length(call)
    prev = by_response_id.get((call.get("request") or {}).get("previous_response_id"))
    if prev is not None and prev is not call and depth < 1000:
        length += _chain_length(prev, by_response_id, depth + 1) + 1
    return length


# ---------------------------------------------------------------------------- validation
def check_canonical(traj: Any) -> list[str]:
    """Problems that would make the trajectory wrong as SFT data (empty list: fine)."""
    if not isinstance(traj, dict):
        return ["trajectory is not an object"]
    problems: list[str] = []
    messages, tools = traj.get("messages"), traj.get("tools", [])
    if not isinstance(tools, list):
        problems.append("tools is not a list")
        tools = []
    names = set()
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
            problems.append(f"tools[{i}] is not a {{type: function, function: {{...}}}} object")
            continue
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"tools[{i}] has no name")
        elif name in names:
            problems.append(f"tools[{i}] duplicates the name {name!r}")
        names.add(name)
        params = fn.get("parameters")
        if not isinstance(params, dict) or params.get("type") != "object":
            problems.append(f"tools[{i}] ({name}) parameters are not a JSON schema of type object")
        elif not isinstance(params.get("properties", {}), dict):
            problems.append(f"tools[{i}] ({name}) properties is not an object")
        if not isinstance(fn.get("description", ""), str):
            problems.append(f"tools[{i}] ({name}) description is not a string")
    if not isinstance(messages, list) or not messages:
        return problems + ["no messages"]
    open_calls: set[str] = set()
    seen_calls: set[str] = set()
    untooled = ""  # the first tool call made without any schema (a student could not learn the call)
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            problems.append(f"{where} is not an object")
            continue
        role = m.get("role")
        if role not in ROLES:
            problems.append(f"{where} has role {role!r} (expected one of {', '.join(ROLES)})")
            continue
        content = m.get("content")
        if not (isinstance(content, str) or (content is None and role == "assistant")):
            problems.append(f"{where} ({role}) content is not a string")
        if role == "assistant":
            for j, call in enumerate(m.get("tool_calls") or ()):
                fn = call.get("function") if isinstance(call, dict) else None
                cid = call.get("id") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not cid or call.get("type") != "function":
                    problems.append(f"{where}.tool_calls[{j}] is not {{id, type: function, function}}")
                    continue
                if cid in seen_calls:
                    problems.append(f"{where}.tool_calls[{j}] reuses the id {cid!r}")
                seen_calls.add(cid)
                open_calls.add(cid)
                if not isinstance(fn.get("arguments"), dict):
                    problems.append(f"{where}.tool_calls[{j}] ({fn.get('name')}) arguments are not a JSON object")
                if not names:
                    untooled = untooled or f"{where}.tool_calls[{j}] calls {fn.get('name')!r}, but the trajectory has no tool schemas"
                elif fn.get("name") not in names:
                    problems.append(f"{where}.tool_calls[{j}] calls {fn.get('name')!r}, which is not in tools")
        if role == "tool":
            cid = m.get("tool_call_id")
            if cid not in open_calls:
                problems.append(f"{where} answers tool call {cid!r}, which no earlier assistant turn left open")
            open_calls.discard(cid)
    if untooled:
        problems.append(untooled)
    if messages and isinstance(messages[-1], dict) and messages[-1].get("role") != "assistant":
        problems.append("the last message is not an assistant turn")
    return problems


__all__ = [
    "TrajectoryError",
    "anthropic_assistant",
    "anthropic_user",
    "canonical_from_calls",
    "check_canonical",
    "conversation_of_call",
    "decode_arguments",
    "items_to_messages",
    "messages_from_anthropic",
    "messages_from_chat",
    "normalize",
    "response_message",
    "step_key",
    "text_of",
    "tool_call",
    "tools_from_anthropic",
    "tools_from_chat",
    "tools_from_responses",
]
