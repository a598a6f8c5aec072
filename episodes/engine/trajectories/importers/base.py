"""What every importer returns, and how it reports bad input (no Django)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field


class ImportFormatError(ValueError):
    """The file is not in the format it was imported as; the message names the line."""


@dataclass
class ImportedEpisode:
    trajectory: dict  # canonical {"messages", "tools"}
    metadata: dict = field(default_factory=dict)  # harness, model, tokens, cost, exit status, submission…
    events: list = field(default_factory=list)  # the source's own records, kept raw

    @property
    def failed(self) -> bool:
        """The source says the run ended in an error (not: the bug stayed unfixed)."""
        return bool(self.metadata.get("error"))


def json_lines(text: str, source: str) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line; anything else is an error naming it."""
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as e:
            raise ImportFormatError(f"{source} line {n}: not valid JSON ({e})") from None
        if not isinstance(value, dict):
            raise ImportFormatError(f"{source} line {n}: expected a JSON object, got {type(value).__name__}")
        rows.append((n, value))
    if not rows:
        raise ImportFormatError(f"{source}: empty file")
    return rows


def count_steps(messages: list[dict]) -> int:
    return sum(1 for m in messages if m.get("role") == "assistant")
