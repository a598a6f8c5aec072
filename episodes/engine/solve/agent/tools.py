"""The agent's tools: a shell in the sandbox, view, edit, submit (plain Python, no Django).

One ``Workbench`` per attempt, bound to one workspace (a checkout of the buggy code)::

    from episodes.engine.solve.agent.tools import TOOL_SCHEMAS, Workbench
    from episodes.engine.sandbox.base import Limits

    bench = Workbench(executor, workspace, Limits(timeout_s=60), environment=repo_spec.environment)
    bench.call("view", {"path": "cartcalc/shipping.py", "start_line": 1, "end_line": 40})
    bench.call("edit", {"path": "cartcalc/shipping.py", "old": "<", "new": "<="})
    bench.call("shell", {"command": "python -m pytest -q tests/test_shipping.py"})
    bench.call("submit", {})
    bench.submitted  # True

``call(name, arguments)`` is the one entry point a model reaches: ``arguments`` is a dict or
the JSON string a model sent; an unknown tool, malformed JSON, a missing or wrongly typed
argument, a path outside the workspace, an edit whose ``old`` text is missing or ambiguous all
come back as a string starting with ``error:`` that the model can read and act on — never as
an exception. (``SandboxError`` — the sandbox itself broken, not the command failing — does
propagate: that is an infrastructure failure, not the model's.) ``call`` also counts them in
``errors``.

``TOOL_SCHEMAS`` are the OpenAI function-calling JSON schemas of the four tools (the form a
Hugging Face chat template and TRL read; the agent loop converts them for Anthropic).

Commands run through the ``Executor`` (bubblewrap or Docker): no network, the workspace the
only writable place, the repository's test environment as ``python``. ``view`` and ``edit``
run here, in this process, so they refuse any path that resolves outside the workspace
(``..``, absolute paths, symlinks pointing out) and anything under ``.git``. Long outputs keep
their head and tail and say how much was cut.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from episodes.engine.llm.tool_args import BadToolArguments, tool_arguments
from episodes.engine.sandbox.base import Executor, Limits

MAX_OUTPUT_CHARS = 10_000
MAX_VIEW_LINES = 400
SHELL_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PAGER": "cat", "GIT_PAGER": "cat", "TERM": "dumb"}

# The order is alphabetical and every argument has a description, with no keyword a Python
# signature cannot express (``additionalProperties``, ``minimum``): TRL's GRPOTrainer renders an
# environment's tools from its methods (``transformers.utils.get_json_schema``, methods listed
# by name), and ``training.engine.grpo_env.BugEnvironment`` builds those methods from these
# schemas — so the student's prompt lists the very same tools, in the same order, in SFT rows,
# GRPO and evaluation. ``parse_arguments`` (unknown, missing, mistyped arguments) and
# ``Workbench.view`` (line numbers from 1) enforce what the schemas no longer say.
TOOL_SCHEMAS: list[dict] = [
    {
        "type": "function",
        "function": {
            "name": "edit",
            "description": (
                "Replace the exact text `old` with `new` in a file. `old` must occur exactly once "
                "(include surrounding lines to make it unique; whitespace counts). With an empty "
                "`old`, creates the file with `new` as its content (only if it does not exist)."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "the file's path, relative to the repository root"},
                    "old": {"type": "string", "description": "exact text to replace (empty to create a new file)"},
                    "new": {"type": "string", "description": "replacement text"},
                },
                "required": ["path", "old", "new"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "shell",
            "description": (
                "Run a bash command in the repository root (a sandbox without network access). "
                "Returns the exit code, stdout and stderr; long outputs are shortened in the middle."
            ),
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string", "description": "the bash command line"}},
                "required": ["command"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "submit",
            "description": "Submit the current state of the repository as your fix. Ends the attempt.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "view",
            "description": (
                "Show a file with line numbers (optionally only lines start_line..end_line, 1-based, "
                "inclusive), or list a directory. Paths are relative to the repository root."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "the file's or directory's path"},
                    "start_line": {"type": "integer", "description": "first line to show (1 or more)"},
                    "end_line": {"type": "integer", "description": "last line to show (1 or more)"},
                },
                "required": ["path"],
            },
        },
    },
]

_SCHEMA_BY_NAME = {t["function"]["name"]: t["function"]["parameters"] for t in TOOL_SCHEMAS}
_JSON_TYPES = {"string": str, "integer": int, "object": dict, "boolean": bool, "number": (int, float)}


class ToolError(Exception):
    """A problem the model caused and can fix; its message is shown to the model."""


def truncate(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    """``text`` if short enough, else its head and tail with a note of what was cut."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut} characters cut ({len(text)} in all) ...]\n{text[-tail:]}"


def parse_arguments(name: str, arguments) -> dict:
    """The arguments of a call to tool ``name`` as a dict, checked against its schema."""
    if name not in _SCHEMA_BY_NAME:
        raise ToolError(f"unknown tool {name!r}; the tools are: {', '.join(_SCHEMA_BY_NAME)}")
    try:
        arguments = tool_arguments(arguments)
    except BadToolArguments as exc:
        raise ToolError(f"the arguments of {name} {exc}") from None
    schema = _SCHEMA_BY_NAME[name]
    props = schema.get("properties", {})
    unknown = sorted(set(arguments) - set(props))
    if unknown:
        raise ToolError(f"{name} takes no argument {', '.join(unknown)} (it takes: {', '.join(props) or 'none'})")
    missing = [k for k in schema.get("required", []) if k not in arguments]
    if missing:
        raise ToolError(f"{name} needs the argument(s) {', '.join(missing)}")
    for key, value in arguments.items():
        want = props[key].get("type")
        if value is None and key not in schema.get("required", []):
            continue
        ok = isinstance(value, _JSON_TYPES[want]) and not (want == "integer" and isinstance(value, bool))
        if not ok:
            raise ToolError(f"argument {key} of {name} must be a {want}, got {type(value).__name__}")
    return arguments


class Workbench:
    """The four tools, bound to one workspace. ``submitted`` turns True on submit; ``calls``
    and ``errors`` count tool calls and those answered with an error."""

    def __init__(
        self,
        executor: Executor,
        workspace: Path,
        limits: Limits = Limits(timeout_s=60),
        environment: str | None = None,
        max_output_chars: int = MAX_OUTPUT_CHARS,
    ):
        self.executor = executor
        self.workspace = Path(workspace).resolve()
        self.limits = limits
        self.environment = environment
        self.max_output_chars = max_output_chars
        self.deadline: float | None = None  # time.monotonic() value; shell commands stop by then
        self.submitted = False
        self.calls = 0
        self.errors = 0

    # -- the dispatcher ---------------------------------------------------------------------

    def call(self, name: str, arguments: dict | str | None) -> str:
        """Run tool ``name``; every problem the model caused comes back as an ``error:`` text."""
        self.calls += 1
        try:
            args = parse_arguments(name, arguments)
            return getattr(self, name)(**args)
        except ToolError as exc:
            self.errors += 1
            return f"error: {exc}"
        except (OSError, RuntimeError, ValueError) as exc:
            if name == "shell":  # the sandbox itself failed: not the model's doing
                raise
            # view and edit work on files the agent controls: a symlink loop (RuntimeError), a
            # name too long, a permission it removed are its to read and fix
            self.errors += 1
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return f"error: {name} failed: {detail[:300]}"

    # -- tools ------------------------------------------------------------------------------

    def shell(self, command: str) -> str:
        if not command.strip():
            raise ToolError("the command is empty")
        limits = self.limits
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 1:
                raise ToolError("no time left for commands")
            if left < limits.timeout_s:
                limits = dataclasses.replace(limits, timeout_s=left)
        result = self.executor.run(
            ["bash", "-c", command], self.workspace, environment=self.environment, env=SHELL_ENV, limits=limits
        )
        if result.timed_out:
            status = f"[timed out after {limits.timeout_s:.0f}s]"
        elif result.killed_by:
            status = f"[killed: {result.killed_by} limit]"
        else:
            status = f"[exit code {result.exit_code}]"
        parts = [status]
        if result.stdout:
            parts.append(result.stdout.rstrip("\n"))
        if result.stderr.strip():
            parts.append("[stderr]\n" + result.stderr.rstrip("\n"))
        return truncate("\n".join(parts), self.max_output_chars)

    def view(self, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
        for name, value in (("start_line", start_line), ("end_line", end_line)):
            if value is not None and value < 1:
                raise ToolError(f"{name} must be 1 or more (lines are numbered from 1)")
        target = self._resolve(path)
        if target.is_dir():
            if start_line is not None or end_line is not None:
                raise ToolError(f"{path} is a directory: line numbers apply to files")
            entries = sorted(
                p.name + ("/" if p.is_dir() else "") for p in target.iterdir() if p.name not in (".git", "__pycache__")
            )
            return truncate("\n".join(entries) or "(empty directory)", self.max_output_chars)
        if not target.is_file():
            raise ToolError(f"{path} does not exist")
        text = self._read_text(target, path)
        lines = text.splitlines()
        start = start_line or 1
        end = end_line or len(lines)
        if start > max(len(lines), 1):
            raise ToolError(f"start_line {start} is past the end of {path} ({len(lines)} lines)")
        if end < start:
            raise ToolError(f"end_line {end} is before start_line {start}")
        end = min(end, len(lines))
        note = ""
        if end - start + 1 > MAX_VIEW_LINES:
            end = start + MAX_VIEW_LINES - 1
            note = f"\n[... showing lines {start}-{end} of {len(lines)}; ask for a range to see more ...]"
        body = "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(start, end + 1))
        return truncate(body + note, self.max_output_chars)

    def edit(self, path: str, old: str, new: str) -> str:
        target = self._resolve(path)
        if old == "":
            if target.exists():
                raise ToolError(f"{path} already exists: to change it, give the exact text to replace as `old`")
            if not target.parent.is_dir():
                raise ToolError(f"the directory of {path} does not exist")
            target.write_text(new)
            return f"created {path} ({len(new.splitlines())} lines)"
        if target.is_dir():
            raise ToolError(f"{path} is a directory")
        if not target.is_file():
            raise ToolError(f"{path} does not exist")
        text = self._read_text(target, path)
        if old == new:
            raise ToolError("`old` and `new` are the same: nothing would change")
        count = text.count(old)
        if count == 0:
            hint = " (it matches if leading/trailing whitespace is ignored: copy the exact indentation)" if old.strip() and old.strip() in text else ""
            raise ToolError(f"the text to replace was not found in {path}{hint}; view the file and copy it exactly")
        if count > 1:
            lines = [text[: m].count("\n") + 1 for m in _find_all(text, old)]
            raise ToolError(
                f"the text to replace occurs {count} times in {path} (lines {', '.join(map(str, lines[:10]))}); "
                "include more surrounding lines so it occurs once"
            )
        at = text.index(old)
        updated = text[:at] + new + text[at + len(old):]
        target.write_text(updated)
        first = text[:at].count("\n") + 1
        last = first + new.count("\n")
        lines = updated.splitlines()
        lo, hi = max(1, first - 3), min(len(lines), last + 3)
        snippet = "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(lo, hi + 1))
        return truncate(f"edited {path}; lines {lo}-{hi} now read:\n{snippet}", self.max_output_chars)

    def submit(self) -> str:
        self.submitted = True
        return "submitted: your changes will now be graded"

    # -- helpers ----------------------------------------------------------------------------

    def _resolve(self, path: str) -> Path:
        if not path or not path.strip():
            raise ToolError("the path is empty")
        if "\0" in path:
            raise ToolError("the path contains a NUL byte")
        candidate = Path(path)
        if candidate.is_absolute():
            # absolute paths are fine when they point inside the workspace (models often use them)
            try:
                candidate = candidate.relative_to(self.workspace)
            except ValueError:
                raise ToolError(f"{path} is outside the repository; use a path relative to its root") from None
        resolved = (self.workspace / candidate).resolve()
        if resolved != self.workspace and self.workspace not in resolved.parents:
            raise ToolError(f"{path} is outside the repository")
        if ".git" in resolved.relative_to(self.workspace).parts:
            raise ToolError("the .git directory is off limits")
        return resolved

    @staticmethod
    def _read_text(target: Path, shown: str) -> str:
        data = target.read_bytes()
        if b"\0" in data[:8192]:
            raise ToolError(f"{shown} is a binary file")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{shown} is not UTF-8 text") from None


def _find_all(text: str, needle: str):
    at = text.find(needle)
    while at != -1:
        yield at
        at = text.find(needle, at + 1)
