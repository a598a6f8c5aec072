"""Dataset rows, deduplication, leakage-free splits, content hashes and saving (no Django).

SFT rows are canonical trajectories ``{"messages": [...], "tools": "<json string>"}`` (a JSON
string because Arrow would pad differing tool schemas with nulls). RL rows carry the bug id,
the prompt built from the problem statement (the built-in agent's system prompt and task, from
``episodes.engine.solve.task_format``; the GRPO environment's tools are its ``TOOL_SCHEMAS``) and a
``task`` JSON string with everything the GRPO environment's ``reset`` needs to materialize the
buggy workspace.

Every row also carries ``bug_id`` and ``repository`` (the split keys). A split is by bug or by
repository; either way no bug (and, by repository, no repository) is on both sides.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from episodes.engine.llm.tool_args import tool_arguments_or_as_sent
from episodes.engine.solve.task_format import prompt_messages



def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def row_hash(row: dict) -> str:
    """Content hash of a row (key order and whitespace never matter)."""
    return hashlib.sha256(canonical_json(row).encode()).hexdigest()


def rows_hash(rows: list[dict]) -> str:
    """Hash of a list of rows, independent of their order."""
    digest = hashlib.sha256()
    for h in sorted(row_hash(r) for r in rows):
        digest.update(h.encode())
    return digest.hexdigest()


def sft_row(trajectory: dict, bug_id: int, repository: str, **extra) -> dict:
    """One SFT row from a canonical trajectory ``{"messages", "tools"}``."""
    messages = trajectory.get("messages") or []
    if not messages:
        raise ValueError("trajectory has no messages")
    tools = trajectory.get("tools") or []
    return {
        "messages": [template_message(m) for m in messages],
        # Key order kept as recorded: the chat template renders the schemas into the prompt,
        # and the student must see exactly what the agent loop will send it.
        "tools": tools if isinstance(tools, str) else json.dumps(tools, ensure_ascii=False),
        "bug_id": int(bug_id),
        "repository": repository,
        **extra,
    }


def template_message(message: dict) -> dict:
    """A message as chat templates want it: content a string, tool-call arguments a dict (logs in
    OpenAI shape hold a JSON string). Arguments that are not a JSON object stay as sent
    (``llm.tool_args``): ``check_canonical`` then reports the call and the SFT builder drops the
    row, rather than train on arguments the model never sent. The local model server renders
    its prompts with this too (``serve``), so a served model is shown its calls as SFT showed them."""
    message = dict(message)
    if message.get("content") is None:
        message["content"] = ""
    calls = []
    for call in message.get("tool_calls") or []:
        call = dict(call)
        function = dict(call.get("function") or {})
        if "arguments" in function:
            function["arguments"] = tool_arguments_or_as_sent(function["arguments"])
        call["function"] = function
        call.setdefault("type", "function")
        calls.append(call)
    if calls:
        message["tool_calls"] = calls
    return message


def rl_prompt(problem_statement: str, repository: str = "") -> list[dict]:
    """The conversation's head a GRPO rollout starts from: the built-in agent's own system prompt
    and task (``task_format.prompt_messages``), so the student meets in GRPO the prompt it was
    finetuned on and is evaluated with. (``repository`` is not part of the prompt: the agent is
    not told it either.)"""
    return prompt_messages(problem_statement)


def rl_row(bug_id: int, repository: str, problem_statement: str, task: dict, **extra) -> dict:
    """One RL row: the prompt and the task ``reset`` materializes (see grpo_env.Task)."""
    return {
        "prompt": rl_prompt(problem_statement, repository),
        "task": canonical_json(task),
        "bug_id": int(bug_id),
        "repository": repository,
        **extra,
    }


def dedupe(rows: list[dict], key=row_hash) -> tuple[list[dict], int]:
    """Rows with duplicates (same content) dropped, first kept; and how many were dropped."""
    seen, kept = set(), []
    for row in rows:
        k = key(row)
        if k not in seen:
            seen.add(k)
            kept.append(row)
    return kept, len(rows) - len(kept)


@dataclass
class Split:
    train: list[dict] = field(default_factory=list)
    heldout: list[dict] = field(default_factory=list)
    by: str = "bug"

    def leaks(self) -> dict[str, list]:
        """Bugs (and, when split by repository, repositories) on both sides: must be empty."""
        found = {"bug_id": sorted({r["bug_id"] for r in self.train} & {r["bug_id"] for r in self.heldout})}
        if self.by == "repository":
            found["repository"] = sorted({r["repository"] for r in self.train} & {r["repository"] for r in self.heldout})
        return {k: v for k, v in found.items() if v}


def split(rows: list[dict], heldout_fraction: float = 0.2, by: str = "bug", seed: int = 0,
          heldout_keys: list | None = None) -> Split:
    """Split rows so that no bug (``by="bug"``) or no repository (``by="repository"``) lands on
    both sides. Groups are assigned by a seeded shuffle of their sorted keys, so the same rows
    and seed give the same split. ``heldout_keys`` names the held-out groups explicitly."""
    if by not in ("bug", "repository"):
        raise ValueError(f"split by {by!r}: expected 'bug' or 'repository'")
    if not 0 <= heldout_fraction < 1:
        raise ValueError("heldout_fraction must be in [0, 1)")
    key = "bug_id" if by == "bug" else "repository"
    groups = sorted({r[key] for r in rows}, key=str)
    if heldout_keys is not None:
        held = set(heldout_keys)
    else:
        order = groups[:]
        random.Random(seed).shuffle(order)
        n_held = round(len(order) * heldout_fraction)
        if heldout_fraction > 0 and n_held == 0 and len(order) > 1:
            n_held = 1  # a non-zero fraction of a few groups still holds one out
        held = set(order[:n_held])
    result = Split(by=by)
    for row in rows:
        (result.heldout if row[key] in held else result.train).append(row)
    return result


def save(dest: str | Path, result: Split, manifest: dict) -> dict:
    """Write ``dest/hf`` (``save_to_disk`` of a DatasetDict train/heldout), ``dest/train.jsonl``,
    ``dest/heldout.jsonl`` and ``dest/manifest.json``; return the manifest (with counts and
    hashes added)."""
    from datasets import Dataset, DatasetDict

    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"{dest} already holds a dataset: datasets are immutable once built")
    dest.mkdir(parents=True, exist_ok=True)
    parts = {"train": result.train, "heldout": result.heldout}
    for name, rows in parts.items():
        with (dest / f"{name}.jsonl").open("w") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    # An empty split is left out: `datasets` saves it but cannot load it back.
    DatasetDict({name: Dataset.from_list(rows) for name, rows in parts.items() if rows}).save_to_disk(str(dest / "hf"))
    manifest = {
        **manifest,
        "split_by": result.by,
        "counts": {name: len(rows) for name, rows in parts.items()},
        "bugs": {name: sorted({r["bug_id"] for r in rows}) for name, rows in parts.items()},
        "repositories": {name: sorted({r["repository"] for r in rows}) for name, rows in parts.items()},
        "hashes": {name: rows_hash(rows) for name, rows in parts.items()},
        "content_hash": rows_hash(result.train + result.heldout),
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def load_jsonl(path: str | Path) -> list[dict]:
    with Path(path).open() as fh:
        return [json.loads(line) for line in fh if line.strip()]
