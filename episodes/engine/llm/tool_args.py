"""A tool call's ``arguments``, as a model sent them, read as a dict (plain Python, no Django).

OpenAI Chat Completions and Responses send a call's arguments as a JSON string; Anthropic
Messages, the canonical trajectory and the chat templates hold them as an object. This is the
one reader, with one rule::

    tool_arguments('{"path": "a.py"}')   # {"path": "a.py"}
    tool_arguments({"path": "a.py"})     # the same dict
    tool_arguments(None), tool_arguments("")   # {}: a call that takes no arguments
    tool_arguments('{"path": ')          # BadToolArguments: are not valid JSON (…); send a JSON object
    tool_arguments('[1, 2]'), ([1, 2])   # BadToolArguments: must be a JSON object, not list

Arguments that are not a JSON object are never guessed at: they are not turned into ``{}`` nor
wrapped. ``str(BadToolArguments)`` says what is wrong in words a model can act on, and is
meant to follow "the arguments of <tool>". What happens next is the caller's, in two kinds:

* the agent answers the call with the error (``agent.tools.parse_arguments``), so the model
  sees why and can send the call again;
* recorded and rendered conversations (the canonical trajectory, SFT rows, the prompt the local
  model server renders) keep the arguments as sent, via ``tool_arguments_or_as_sent``: the
  call stays the model's own — ``check_canonical`` reports it ("arguments are not a JSON
  object") and the SFT builder drops the row, and the served model's chat template shows the
  model the call it really made.

(The agent's own history re-sent over Anthropic Messages is the one place that must hold an
object: a ``tool_use`` input has to be one. It sends ``{}`` for a call already answered with
the error above — see ``agent.loop``.)
"""
from __future__ import annotations

import json
from typing import Any


class BadToolArguments(ValueError):
    """Tool-call arguments that are not a JSON object; the message is for the model."""


def tool_arguments(arguments: Any) -> dict:
    """The arguments as a dict, or ``BadToolArguments`` saying why they are not one."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError as exc:
            raise BadToolArguments(f"are not valid JSON ({exc}); send a JSON object") from None
        if isinstance(arguments, dict):
            return arguments
    raise BadToolArguments(f"must be a JSON object, not {type(arguments).__name__}")


def tool_arguments_or_as_sent(arguments: Any) -> Any:
    """The arguments as a dict when they are a JSON object (or absent), else as they were sent."""
    try:
        return tool_arguments(arguments)
    except BadToolArguments:
        return arguments
