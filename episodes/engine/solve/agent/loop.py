"""The built-in agent: one small tool-calling loop (plain Python, no Django).

    from episodes.engine.solve.agent.loop import AgentLimits, run_agent
    from episodes.engine.solve.agent.tools import Workbench
    from episodes.engine.llm import EndpointConfig
    from episodes.engine.solve.task_format import task_prompt

    endpoint = EndpointConfig("anthropic", gateway_url, "claude-…", api_key=episode_gateway_token)
    result = run_agent(endpoint, Workbench(executor, workspace, environment=env), task_prompt(problem),
                       limits=AgentLimits(max_steps=30, max_tokens=300_000, max_cost_usd=2, max_wall_s=900))
    result.exit_reason   # submitted | finished | step_limit | token_limit | cost_limit | time_limit | error
    result.messages      # the conversation, OpenAI chat shape (tool_calls, role "tool" results)

The task format is ``episodes.engine.solve.task_format``'s: the conversation starts with its
``SYSTEM_PROMPT`` and the task (``task_prompt(problem)``) and the tools are ``TOOL_SCHEMAS`` —
the head the SFT rows record and the RL rows and the GRPO environment reproduce.

Each step sends the whole conversation with the tool schemas to the endpoint — OpenAI Chat
Completions or Anthropic Messages, whichever the endpoint speaks — and runs the tool calls the
model answers with, in order, through the ``Workbench``. It stops when the model calls
``submit`` (after the rest of that reply's calls), answers without a tool call, or a limit is
reached: steps (model calls), tokens (input + output, summed over calls), cost (from the
endpoint's prices) or wall time (shell commands are also cut off at the deadline). A call
the model got wrong (unknown tool, arguments that are not JSON or do not fit the schema) is
answered with an ``error:`` tool result and counted in ``malformed``; the loop goes on. HTTP
429/5xx answers and connection errors are retried twice with a short back-off, then end the
run with ``error``. The loop never raises for the model's or the endpoint's failures.

The conversation is kept in OpenAI chat shape; for Anthropic it is converted on each call
(the system prompt apart, tool results as ``tool_result`` blocks in a user turn, and the
model's own content blocks — thinking included — sent back exactly as received).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from typing import Callable

from episodes.engine.llm.client import ChatResult, EndpointConfig, LLMClient
from episodes.engine.llm.tool_args import BadToolArguments, tool_arguments
from episodes.engine.solve.task_format import SYSTEM_PROMPT
from episodes.engine.solve.agent.tools import TOOL_SCHEMAS, ToolError, Workbench, parse_arguments

EXIT_REASONS = ("submitted", "finished", "step_limit", "token_limit", "cost_limit", "time_limit", "error")
RETRY_STATUSES = (408, 409, 429, 500, 502, 503, 504, 529)

@dataclass
class AgentLimits:
    max_steps: int = 30
    max_tokens: int = 500_000  # input + output tokens, summed over all model calls
    max_cost_usd: float | None = None
    max_wall_s: float = 1800.0
    retries: int = 2  # extra tries of one step after a 429/5xx or a connection error

    @classmethod
    def from_dict(cls, data: dict | None) -> "AgentLimits":
        """Limits from a teacher's config (unknown keys ignored, values coerced)."""
        known = {f.name: f.type for f in fields(cls)}
        kwargs = {}
        for key, value in (data or {}).items():
            if key in known and value not in (None, ""):
                kwargs[key] = float(value) if key in ("max_cost_usd", "max_wall_s") else int(value)
        return cls(**kwargs)


@dataclass
class AgentResult:
    exit_reason: str
    steps: int = 0  # model calls that got an answer (retries not counted)
    calls: int = 0  # HTTP calls made, retries included
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    malformed: int = 0  # tool calls the model got wrong (unknown tool, bad arguments)
    tool_errors: int = 0  # tool calls answered with an error (malformed ones included)
    error: str = ""
    elapsed_s: float = 0.0
    messages: list[dict] = field(default_factory=list)
    tools: list[dict] = field(default_factory=lambda: TOOL_SCHEMAS)

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# --- the loop -------------------------------------------------------------------------------


def run_agent(
    endpoint: EndpointConfig,
    bench: Workbench,
    task: str,
    *,
    limits: AgentLimits = AgentLimits(),
    system_prompt: str = SYSTEM_PROMPT,
    tools: list[dict] = TOOL_SCHEMAS,
    on_call: Callable[[ChatResult], None] | None = None,
    on_step: Callable[[int, dict], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> AgentResult:
    """Let the model work on ``task`` with ``bench``'s tools until it submits, stops or hits a
    limit. ``on_call`` sees every HTTP call (to record it); ``on_step`` each assistant turn."""
    started = clock()
    deadline = started + limits.max_wall_s
    bench.deadline = time.monotonic() + limits.max_wall_s  # the workbench keeps real time
    client = LLMClient(endpoint, on_call=on_call)
    messages: list[dict] = [{"role": "system", "content": system_prompt}, {"role": "user", "content": task}]
    result = AgentResult(exit_reason="", messages=messages, tools=tools)

    def finish(reason: str, error: str = "") -> AgentResult:
        result.exit_reason, result.error = reason, error
        result.elapsed_s = round(clock() - started, 3)
        result.messages = [{k: v for k, v in m.items() if not k.startswith("_")} for m in messages]
        result.tool_errors = bench.errors + result.malformed
        return result

    while True:
        if result.steps >= limits.max_steps:
            return finish("step_limit")
        if clock() >= deadline:
            return finish("time_limit")
        body = request_body(endpoint.protocol, messages, tools)
        answer = None
        for attempt in range(limits.retries + 1):
            answer = client.send(body)
            result.calls += 1
            result.tokens_in += answer.tokens_in
            result.tokens_out += answer.tokens_out
            result.cost_usd += answer.cost_usd
            retryable = answer.error and (answer.status_code is None or answer.status_code in RETRY_STATUSES)
            if not retryable or attempt == limits.retries:
                break
            pause = min(2.0 ** attempt, max(0.0, deadline - clock()))
            if pause <= 0:
                break
            sleep(pause)
        if answer.error:
            return finish("error", f"model call failed: {answer.error}")
        reply, problem = parse_reply(endpoint.protocol, answer.response, result.steps)
        if problem:
            return finish("error", f"unusable model reply: {problem}")
        result.steps += 1
        messages.append(reply)
        if on_step is not None:
            on_step(result.steps, reply)
        if not reply.get("tool_calls"):
            return finish("finished")
        for call in reply["tool_calls"]:
            name, arguments = call["function"]["name"], call["function"]["arguments"]
            try:
                parse_arguments(name, arguments)
            except ToolError as exc:
                result.malformed += 1
                output = f"error: {exc}"
            else:
                try:
                    output = bench.call(name, arguments)
                except Exception as exc:  # the sandbox itself failed: not the model's doing
                    messages.append({"role": "tool", "tool_call_id": call["id"], "content": f"error: {exc}"})
                    return finish("error", f"tool {name} failed: {type(exc).__name__}: {exc}")
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})
        if bench.submitted:
            return finish("submitted")
        if result.tokens >= limits.max_tokens:
            return finish("token_limit")
        if limits.max_cost_usd is not None and result.cost_usd >= limits.max_cost_usd:
            return finish("cost_limit")


# --- the two wire protocols -----------------------------------------------------------------

_CHAT_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")


def request_body(protocol: str, messages: list[dict], tools: list[dict]) -> dict:
    """The request body (without model/max_tokens) for ``protocol``."""
    if protocol == "anthropic":
        system, turns = to_anthropic(messages)
        body = {"messages": turns, "tools": [anthropic_tool(t) for t in tools]}
        if system:
            body["system"] = system
        return body
    chat = [{k: m[k] for k in _CHAT_KEYS if k in m} for m in messages]
    return {"messages": chat, "tools": tools, "tool_choice": "auto"}


def anthropic_tool(tool: dict) -> dict:
    fn = tool["function"]
    return {"name": fn["name"], "description": fn.get("description", ""), "input_schema": fn["parameters"]}


def to_anthropic(messages: list[dict]) -> tuple[str, list[dict]]:
    """(system prompt, Anthropic turns) from the OpenAI-shaped conversation."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns: list[dict] = []

    def add(role: str, blocks: list[dict]) -> None:
        if turns and turns[-1]["role"] == role:  # Anthropic wants user/assistant to alternate
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": list(blocks)})

    for m in messages:
        if m["role"] == "user":
            add("user", [{"type": "text", "text": m["content"]}])
        elif m["role"] == "tool":
            block = {"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": m["content"] or "(no output)"}
            if m["content"].startswith("error:"):
                block["is_error"] = True
            add("user", [block])
        elif m["role"] == "assistant":
            blocks = m.get("_anthropic_content")
            if blocks is None:
                blocks = [{"type": "text", "text": m["content"]}] if m.get("content") else []
                for c in m.get("tool_calls") or []:
                    try:
                        data = tool_arguments(c["function"]["arguments"])
                    except BadToolArguments:  # already answered with the error; a tool_use input is an object
                        data = {}
                    blocks.append({"type": "tool_use", "id": c["id"], "name": c["function"]["name"], "input": data})
            add("assistant", blocks or [{"type": "text", "text": "(no reply)"}])
    return system, turns


def parse_reply(protocol: str, body: dict, step: int = 0) -> tuple[dict, str]:
    """(assistant message in OpenAI chat shape, problem) from a response body."""
    if protocol == "anthropic":
        blocks = body.get("content")
        if not isinstance(blocks, list):
            return {}, "the response has no content blocks"
        text, thinking, calls = [], [], []
        for i, b in enumerate(blocks):
            if not isinstance(b, dict):
                continue
            if b.get("type") == "text":
                text.append(str(b.get("text", "")))
            elif b.get("type") == "thinking":
                thinking.append(str(b.get("thinking", "")))
            elif b.get("type") == "tool_use":
                args = b.get("input")
                calls.append(_call(b.get("id") or f"toolu_{step}_{i}", b.get("name"), args))
        message = {"role": "assistant", "content": "".join(text), "_anthropic_content": blocks}
        if thinking:
            message["reasoning_content"] = "".join(thinking)
    else:
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return {}, "the response has no choices"
        raw = choices[0].get("message")
        if not isinstance(raw, dict):
            return {}, "the response's first choice has no message"
        content = raw.get("content")
        if isinstance(content, list):  # content parts, from some compatible servers
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        calls = []
        for i, c in enumerate(raw.get("tool_calls") or []):
            fn = c.get("function") if isinstance(c, dict) else None
            if isinstance(fn, dict):
                calls.append(_call(c.get("id") or f"call_{step}_{i}", fn.get("name"), fn.get("arguments")))
        message = {"role": "assistant", "content": content if isinstance(content, str) else ""}
        if isinstance(raw.get("reasoning_content"), str) and raw["reasoning_content"]:
            message["reasoning_content"] = raw["reasoning_content"]
    if calls:
        message["tool_calls"] = calls
    return message, ""


def _call(call_id: str, name, arguments) -> dict:
    """One tool call, arguments as the JSON string OpenAI uses (a dict is encoded; a string the
    model sent is kept as it is, valid or not, so its mistake can be told back)."""
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {})
    return {"id": str(call_id), "type": "function", "function": {"name": str(name or ""), "arguments": arguments}}
