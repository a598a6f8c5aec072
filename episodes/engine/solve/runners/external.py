"""Run Claude Code or Codex headless inside the sandbox, reaching only the recording gateway.

The CLI runs arbitrary commands for the model, so it runs under the same sandbox as every
verifier (bubblewrap, no network, uid 65534). Inside it sees:

* the workspace (read-write, its working directory) and the repository's environment, so
  ``python``/``pytest`` are the repository's;
* ``/opt/bugforge/agents``: ``agents/node_modules`` (read-only) — the pinned CLIs;
* ``/opt/bugforge/home``: a per-run state directory (read-write) used as ``HOME`` /
  ``CODEX_HOME``: their config, session logs and caches, thrown away afterwards;
* ``/run/bugforge/gateway.sock``: the gateway's unix socket. ``forwarder.py`` (stdlib Python,
  started first) listens on the sandbox's private ``127.0.0.1:8787`` and relays to it, and the
  CLI's base URL points there, with the episode's gateway token as its API key. The real
  upstream key never enters the sandbox.

``run_external_agent`` returns the CLI's JSON-lines stdout as events plus a summary; the
gateway has meanwhile stored every model call of the episode.
"""
from __future__ import annotations

import inspect
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from episodes.engine.llm.usage import usage_of
from episodes.engine.sandbox.base import Limits, Mount, SandboxError

HARNESSES = ("claude_code", "codex")
GATEWAY_PORT = 8787  # inside the sandbox's own network namespace: nothing else listens there
AGENTS_INSTALL_HINT = "run `npm ci --prefix agents` (needs node and npm)"
SANDBOX_AGENTS = "/opt/bugforge/agents"
SANDBOX_HOME = "/opt/bugforge/home"
SANDBOX_SOCKET = "/run/bugforge/gateway.sock"
CLI_NAMES = {"claude_code": "Claude Code CLI", "codex": "Codex CLI"}
STDERR_TAIL = 4000
EVENTS_MAX_BYTES = 64_000_000
PROJECT_AGENTS_DIR = Path(__file__).resolve().parents[4] / "agents"


@dataclass
class ExternalRun:
    harness: str
    events: list[dict] = field(default_factory=list)
    exit_code: int | None = None
    stderr_tail: str = ""
    error: str = ""
    duration_s: float = 0.0
    timed_out: bool = False
    summary: dict = field(default_factory=dict)
    exit_reason: str = ""  # finished | step_limit | time_limit | error (Episode.ExitReason values)
    session_log: str = ""  # the CLI's own on-disk log (Claude Code session / Codex rollout JSONL)

    @property
    def ok(self) -> bool:
        return not self.error


def default_agents_dir() -> Path:
    return Path(os.environ.get("BUGFORGE_AGENTS_DIR") or PROJECT_AGENTS_DIR)


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def cli_path(harness: str, agents_dir: Path | None = None) -> Path | None:
    """The CLI's native executable under ``agents/node_modules``, or None when not installed.
    Both packages ship a native binary per platform; running it directly (rather than the
    npm ``bin`` shim) keeps node out of the picture for Codex."""
    modules = Path(agents_dir or default_agents_dir()) / "node_modules"
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower(), "x64")
    if harness == "claude_code":
        wrapper = modules / "@anthropic-ai" / "claude-code" / "bin" / "claude.exe"
        if _is_elf(wrapper):  # the package's postinstall copied the native binary here
            return wrapper
        for candidate in sorted(modules.glob(f"@anthropic-ai/claude-code-linux-{arch}*/claude")):
            if _is_elf(candidate):
                return candidate
        return None
    if harness == "codex":
        triple = "x86_64" if arch == "x64" else "aarch64"
        for candidate in sorted(modules.glob(f"@openai/codex-linux-{arch}/vendor/{triple}-unknown-linux-*/bin/codex")):
            if _is_elf(candidate):
                return candidate
        return None
    raise ValueError(f"unknown harness {harness!r}; expected one of {HARNESSES}")


def missing_cli_message(harness: str) -> str:
    return f"{CLI_NAMES[harness]} not installed: {AGENTS_INSTALL_HINT}"


def parse_event_lines(text: str) -> list[dict]:
    """The CLI's stdout, one JSON event per line. A line that is not a JSON object is kept
    as ``{"type": "stdout", "text": ...}`` rather than dropped."""
    events = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        events.append(event if isinstance(event, dict) else {"type": "stdout", "text": line})
    return events


# ---------------------------------------------------------------------------- per harness
def _claude_argv(binary: str, task: str, model: str, max_turns: int | None) -> list[str]:
    argv = [binary, "-p", task, "--output-format", "stream-json", "--verbose",
            "--model", model, "--dangerously-skip-permissions"]
    if max_turns:
        argv += ["--max-turns", str(max_turns)]
    return argv


def _claude_env(token: str) -> dict:
    return {
        "HOME": SANDBOX_HOME,
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{GATEWAY_PORT}",
        "ANTHROPIC_API_KEY": token,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


CODEX_TOKEN_VAR = "BUGFORGE_GATEWAY_TOKEN"


def codex_config(model: str) -> str:
    return (
        f"model = {json.dumps(model)}\n"
        'model_provider = "bugforge"\n'
        "\n[model_providers.bugforge]\n"
        'name = "BugForge recording gateway"\n'
        f'base_url = "http://127.0.0.1:{GATEWAY_PORT}/v1"\n'
        f'env_key = "{CODEX_TOKEN_VAR}"\n'
        'wire_api = "responses"\n'
        # Plugins make Codex sync a curated catalog from GitHub, and analytics are flushed to
        # OpenAI at exit; in the sandbox (no network) each only costs a DNS timeout (~5 s).
        "\n[features]\nplugins = false\n"
        # Without its plan tool Codex trims the planning sections out of the instructions it
        # sends, while its rollout keeps them whole: with the tool, the log and the wire agree.
        "\n[tools.update_plan]\nenabled = true\n"
        "\n[analytics]\nenabled = false\n"
    )


def _codex_argv(binary: str, task: str) -> list[str]:
    return [binary, "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", task]


def _codex_env(token: str) -> dict:
    return {"HOME": SANDBOX_HOME, "CODEX_HOME": f"{SANDBOX_HOME}/codex", CODEX_TOKEN_VAR: token}


def summarize_events(harness: str, events: list[dict]) -> dict:
    """What the CLI itself reported: final message, turns, tokens, cost, its own error."""
    summary: dict = {}
    if harness == "claude_code":
        for e in events:
            if e.get("type") == "system" and e.get("subtype") == "init":
                summary["session_id"] = e.get("session_id")
                summary["cli_version"] = e.get("claude_code_version")
            if e.get("type") == "result":
                usage = usage_of("anthropic", e)
                summary.update({
                    "final_message": e.get("result") or "",
                    "turns": e.get("num_turns"),
                    "cost_usd": e.get("total_cost_usd"),
                    "tokens_in": usage.tokens_in,
                    "tokens_out": usage.tokens_out,
                    "stop": e.get("subtype"),
                })
                if e.get("subtype") == "error_max_turns":  # the turn limit we set: a limit, not a failure
                    summary["limit"] = "step_limit"
                elif e.get("is_error") or e.get("subtype") not in (None, "success"):
                    summary["error"] = f"Claude Code ended with {e.get('subtype')}: {str(e.get('result') or '')[:500]}"
    else:
        tokens_in = tokens_out = turns = 0
        for e in events:
            kind = e.get("type")
            if kind == "thread.started":
                summary["session_id"] = e.get("thread_id")
            elif kind == "turn.completed":
                usage = usage_of("openai_responses", e)
                tokens_in += usage.tokens_in
                tokens_out += usage.tokens_out
                turns += 1
            elif kind == "item.completed" and (e.get("item") or {}).get("type") == "agent_message":
                summary["final_message"] = e["item"].get("text", "")
            elif kind in ("turn.failed", "error"):
                message = (e.get("error") or {}).get("message") if isinstance(e.get("error"), dict) else e.get("message")
                summary["error"] = f"Codex reported {kind}: {_api_message(message) or e}"
        summary.update({"turns": turns, "tokens_in": tokens_in, "tokens_out": tokens_out})
    return summary


# ---------------------------------------------------------------------------- the run
def run_external_agent(
    harness: str,
    *,
    executor,
    workspace: Path,
    task: str,
    gateway: Path,
    token: str,
    model: str,
    limits: Limits = Limits(timeout_s=600, memory_mb=4096, pids=512),
    environment: str | None = None,
    max_turns: int | None = None,
    agents_dir: Path | None = None,
) -> ExternalRun:
    """Run the ``harness`` CLI on ``task`` in ``workspace`` inside ``executor``'s sandbox.

    ``gateway`` is the path of the recording gateway's unix socket (see
    ``episodes.solving.gateway.server.serve_in_background(uds=...)``); ``token`` the episode's
    gateway token. Never raises for the CLI's or the sandbox's failures: they are in
    ``ExternalRun.error``.
    """
    if harness not in HARNESSES:
        raise ValueError(f"unknown harness {harness!r}; expected one of {HARNESSES}")
    agents_dir = Path(agents_dir or default_agents_dir())
    binary = cli_path(harness, agents_dir)
    if binary is None:
        return ExternalRun(harness, error=missing_cli_message(harness), exit_reason="error")
    if "mounts" not in inspect.signature(executor.run).parameters:
        return ExternalRun(harness, exit_reason="error", error=(
            f"the {getattr(executor, 'name', type(executor).__name__)} sandbox backend cannot mount the "
            f"teacher CLIs; run {CLI_NAMES[harness]} teachers with BUGFORGE_SANDBOX=local"))
    gateway = Path(gateway)
    if not gateway.exists():
        return ExternalRun(harness, exit_reason="error",
                           error=f"the gateway socket {gateway} does not exist (is the gateway serving?)")
    # The event stream repeats every tool result: a long session outgrows the sandbox's default
    # output cap, and a cut stream loses the final result event.
    limits = replace(limits, output_bytes=max(limits.output_bytes, EVENTS_MAX_BYTES))
    modules = agents_dir / "node_modules"
    in_sandbox = f"{SANDBOX_AGENTS}/{binary.relative_to(modules)}"
    uid = getattr(executor, "run_as_uid", 65534)
    workspace = Path(workspace)
    state = Path(tempfile.mkdtemp(prefix=".agent-state-", dir=workspace.parent))
    try:
        _prepare_state(state, uid, harness, model)
        try:
            os.chmod(gateway, 0o666)  # connect() needs write permission on the socket for uid 65534
        except OSError:
            pass  # not ours to change: the run will say if it cannot connect
        if harness == "claude_code":
            command, env = _claude_argv(in_sandbox, task, model, max_turns), _claude_env(token)
        else:
            command, env = _codex_argv(in_sandbox, task), _codex_env(token)
        argv = ["/usr/bin/python3", f"{SANDBOX_HOME}/forwarder.py", str(GATEWAY_PORT), SANDBOX_SOCKET, "--", *command]
        mounts = (
            Mount(modules, SANDBOX_AGENTS),
            Mount(state, SANDBOX_HOME, writable=True),
            Mount(gateway, SANDBOX_SOCKET),
        )
        try:
            result = executor.run(argv, workspace, environment=environment, env=env, limits=limits, mounts=mounts)
        except SandboxError as e:
            return ExternalRun(harness, exit_reason="error", error=f"the sandbox could not run {CLI_NAMES[harness]}: {e}")
        session_log = _session_log(state, harness)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    events = parse_event_lines(result.stdout)
    run = ExternalRun(
        harness, events=events, exit_code=result.exit_code, stderr_tail=result.stderr[-STDERR_TAIL:],
        duration_s=result.duration_s, timed_out=result.timed_out, summary=summarize_events(harness, events),
        session_log=session_log,
    )
    name = CLI_NAMES[harness]
    if result.timed_out:
        run.error = f"{name} did not finish within {limits.timeout_s:.0f} s"
    elif result.killed_by:
        run.error = f"{name} was stopped by the sandbox ({result.killed_by} limit)"
    elif run.summary.get("limit"):
        pass  # it stopped at a limit we set (and exits non-zero for it): reported as the exit reason
    elif run.summary.get("error"):  # the CLI's own words for what went wrong: the clearest reason
        run.error = run.summary["error"]
    elif result.exit_code != 0:
        run.error = f"{name} exited with code {result.exit_code}: {_last_lines(result.stderr or result.stdout)}"
    elif not events:
        run.error = f"{name} printed no events"
    run.exit_reason = ("time_limit" if run.timed_out else "error" if run.error
                       else run.summary.get("limit") or "finished")
    return run


def _api_message(message):
    """The message inside an API error body that a CLI passed on whole (JSON), else as given."""
    try:
        body = json.loads(message) if isinstance(message, str) and message.lstrip().startswith("{") else None
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("message") if isinstance(error, dict) and error.get("message") else message


# What a CLI prints on every run, never the reason it failed.
STDERR_NOISE = ("Reading additional input from stdin...",)


def _last_lines(text: str, max_chars: int = 500) -> str:
    """The end of a CLI's output without its routine chatter."""
    lines = [line for line in text.strip().splitlines() if line.strip() and line.strip() not in STDERR_NOISE]
    return "\n".join(lines)[-max_chars:] or "(no output)"


def _session_log(state: Path, harness: str, max_bytes: int = 20_000_000) -> str:
    """The CLI's own log of the run, read before the state directory goes (the importers
    read this format; it holds what the JSON events leave out, e.g. Codex's system prompt)."""
    pattern = ".claude/projects/*/*.jsonl" if harness == "claude_code" else "codex/sessions/*/*/*/rollout-*.jsonl"
    logs = sorted(state.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not logs or logs[-1].stat().st_size > max_bytes:
        return ""
    return logs[-1].read_text(encoding="utf-8", errors="replace")


def _prepare_state(state: Path, uid: int, harness: str, model: str) -> None:
    shutil.copyfile(Path(__file__).with_name("forwarder.py"), state / "forwarder.py")
    if harness == "codex":
        (state / "codex").mkdir()
        (state / "codex" / "config.toml").write_text(codex_config(model))
    for path in [state, *state.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
        try:
            os.chown(path, uid, uid)
        except PermissionError:
            pass  # not root: the sandbox runs as this user anyway
