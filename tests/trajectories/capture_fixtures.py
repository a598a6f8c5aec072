"""Regenerate the real-CLI fixtures: run Claude Code and Codex (agents/node_modules) in the
sandbox on the pricing scenario against FakeUpstream, and save what they wrote.

    .venv/bin/python -m tests.trajectories.capture_fixtures

Writes tests/trajectories/fixtures/{claude_code_session,claude_code_events,codex_rollout,
codex_events}.jsonl. The session log and rollout are the CLIs' own on-disk formats (what the
importers read); the events are their JSON-lines stdout (what the runner parses).
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from episodes.engine.solve.runners import cli_path, run_external_agent
from episodes.engine.sandbox import Limits
from episodes.engine.sandbox.local import LocalExecutor
from tests.llm.fake_upstream import FakeUpstream
from tests.trajectories.relay import unix_relay
from tests.trajectories.scenario import TASK, ScriptedAgentModel, make_workspace, steps

FIXTURES = Path(__file__).with_name("fixtures")
NAMES = {"claude_code": ("claude_code_session", "claude_code_events"), "codex": ("codex_rollout", "codex_events")}


def capture(harness: str, base: Path) -> None:
    workspace = make_workspace(base / harness / "workspace")
    with FakeUpstream() as up:
        up.fallback = ScriptedAgentModel(steps(harness, workspace))
        host, port = up.url.removeprefix("http://").rsplit(":", 1)
        with unix_relay(base / harness / "gw.sock", host, int(port)) as sock:
            run = run_external_agent(
                harness, executor=LocalExecutor(base / "cache"), workspace=workspace, task=TASK,
                gateway=sock, token="bfgw_fixture", model="claude-sonnet-4-5" if harness == "claude_code" else "gpt-5-codex",
                limits=Limits(timeout_s=180, memory_mb=4096, pids=512),
            )
    if run.error:
        sys.exit(f"{harness}: {run.error}\n{run.stderr_tail}")
    log_name, events_name = NAMES[harness]
    (FIXTURES / f"{log_name}.jsonl").write_text(run.session_log)
    (FIXTURES / f"{events_name}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in run.events))
    print(f"{harness}: {len(run.events)} events, {len(run.session_log)} bytes of session log; "
          f"pricing.py fixed: {'1 - percent' in (workspace / 'pricing.py').read_text()}")


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="bugforge-capture-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        for harness in NAMES:
            if cli_path(harness) is None:
                print(f"{harness}: not installed, skipped")
                continue
            capture(harness, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
