"""The text sent to models, one template file per prompt (no Django): injection (``inject_*``),
feature removal, issue text and the solving agent (``agent_*``). Fields are ``str.format``
placeholders; each file holds the exact text, so no trailing newline is added or dropped."""
from __future__ import annotations

from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent


class MissingPromptField(KeyError):
    """A template was rendered without one of its fields."""


@cache
def template(name: str) -> str:
    """The raw text of ``<name>.txt``."""
    return (HERE / f"{name}.txt").read_text(encoding="utf-8")


def names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.txt"))


def render(prompt: str, /, **fields) -> str:
    """``<prompt>.txt`` with its ``{field}`` placeholders filled in (positional-only, so a
    template may have a field called ``name``)."""
    try:
        return template(prompt).format(**fields)
    except KeyError as exc:
        raise MissingPromptField(f"prompt {prompt!r} needs the field {exc.args[0]!r}") from None
