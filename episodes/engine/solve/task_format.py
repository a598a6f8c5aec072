"""The task an agent is given, in one place (no Django): system prompt, task prompt, tools.

Everything that puts a bug in front of a model renders it from here — the built-in agent
(episodes and evaluation), the SFT rows' reference head, the RL rows and the GRPO
environment — so a student finetuned on teacher episodes meets the same prompt and the same
tools in GRPO and in evaluation::

    from episodes.engine.solve.task_format import SYSTEM_PROMPT, TOOL_SCHEMAS, task_prompt, prompt_messages
    prompt_messages(problem)          # [system, user] as the built-in agent sends them
    task_prompt(problem, harness="claude_code")   # what a CLI teacher is told

Harnesses finish differently: the built-in agent (and the GRPO student, which has the same
tools) calls ``submit``; Claude Code and Codex have no such tool and finish by ending their
turn, so their task says so. Their system prompt and tools are their own (the gateway
records exactly what they sent).
"""
from __future__ import annotations

from episodes.engine import prompts
from episodes.engine.solve.agent.tools import TOOL_SCHEMAS

BUILTIN = "builtin"

SYSTEM_PROMPT = prompts.render("agent_system")

# How each harness says it is done: the CLIs end their turn (they have no `submit`).
CLI_FINISH = (
    "The working directory is a git repository holding the code as you received it: "
    "`git status` and `git diff` show your changes. There is no network. When the fix is "
    "done, stop: end your turn with a short summary of the change."
)
FINISH = {BUILTIN: "Call `submit` when you are done.", "claude_code": CLI_FINISH, "codex": CLI_FINISH}

DEFAULT_PROBLEM = (
    "The project's test suite has failures caused by a bug in the source code. Find the bug and fix it."
)


def task_prompt(problem_statement: str, harness: str = BUILTIN) -> str:
    """The user turn that starts an attempt at a bug, worded for ``harness``."""
    problem = (problem_statement or "").strip() or DEFAULT_PROBLEM
    return prompts.render("agent_task", problem=problem, finish=FINISH.get(harness, FINISH[BUILTIN]))


def prompt_messages(problem_statement: str) -> list[dict]:
    """The conversation's head as the built-in agent (and the GRPO student) starts it."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": task_prompt(problem_statement)}]


__all__ = ["BUILTIN", "SYSTEM_PROMPT", "TOOL_SCHEMAS", "prompt_messages", "task_prompt"]
