"""Importers for agent logs recorded elsewhere → canonical trajectories (no Django).

    from episodes.engine.trajectories.importers import import_text
    episode = import_text("claude_code", path.read_text(), source=str(path))
    episode.trajectory, episode.metadata, episode.events

Formats: ``claude_code`` (a session JSONL from ``~/.claude/projects/…``), ``codex`` (a rollout
JSONL from ``~/.codex/sessions/…``), ``mini_swe_agent`` (a ``*.traj.json``), ``swe_agent``
(SWE-agent's ``<instance>.traj``). Input that is not in the format raises ``ImportFormatError``
naming the line (or message) at fault.
"""
from pathlib import Path

from episodes.engine.trajectories.importers import claude_code, codex, mini_swe_agent, swe_agent
from episodes.engine.trajectories.importers.base import ImportedEpisode, ImportFormatError

FORMATS = {
    "claude_code": claude_code.parse,
    "codex": codex.parse,
    "mini_swe_agent": mini_swe_agent.parse,
    "swe_agent": swe_agent.parse,
}


def import_text(fmt: str, text: str, source: str = "<input>") -> ImportedEpisode:
    try:
        parse = FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}") from None
    return parse(text, source)


def import_file(fmt: str, path: Path) -> ImportedEpisode:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ImportFormatError(f"{path}: not UTF-8 text ({e})") from None
    return import_text(fmt, text, source=str(path))


__all__ = ["FORMATS", "ImportFormatError", "ImportedEpisode", "import_file", "import_text"]
