"""Run a model as the built-in agent over bugs, k attempts each, and grade every attempt
(no Django). The agent loop, its tools and the grader are the episodes' own
(``episodes.engine.solve.agent.loop.run_agent``, ``Workbench``, ``reward.grade``), and so is the task
(``episodes.engine.solve.task_format``: the system prompt, task prompt and tools the SFT rows and the
GRPO environment use too); the model is any
OpenAI-compatible or Anthropic endpoint — a teacher's, or a local checkpoint served by
``training.engine.serve`` (see ``LocalModelServer``)."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from episodes.engine.solve.agent.loop import AgentLimits, run_agent
from episodes.engine.solve.agent.tools import Workbench
from episodes.engine.llm import EndpointConfig
from episodes.engine.solve.reward import grade
from episodes.engine.solve.task_format import task_prompt
from episodes.engine.validate.validator import BugSpec

from training.engine.grpo_env import Sandbox


@dataclass
class Attempt:
    bug_id: int
    repository: str
    difficulty: str
    attempt: int
    reward: float
    reason: str
    exit_reason: str
    steps: int
    tool_errors: int
    error: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def attempt_task(endpoint: EndpointConfig, sandbox: Sandbox, task: dict, number: int,
                 limits: AgentLimits) -> Attempt:
    """One attempt: a fresh buggy checkout, the agent loop, then the grader on its workspace."""
    spec = sandbox.repo_spec(task)
    with sandbox.workspaces.task_checkout(spec.mirror, spec.commit, patch=task["patch"]) as workspace:
        bench = Workbench(sandbox.executor, workspace, sandbox.limits, environment=spec.environment)
        result = run_agent(endpoint, bench, task_prompt(task.get("problem_statement") or ""), limits=limits)
        verdict = grade(sandbox.executor, sandbox.workspaces, spec, BugSpec(task["patch"], task["verifier"]),
                        fail_to_pass=task.get("fail_to_pass") or (), pass_to_pass=task.get("pass_to_pass") or (),
                        workspace=workspace, limits=sandbox.limits, run_suite_after_failed_verifier=False)
    return Attempt(task["bug_id"], task.get("repository", ""), task.get("difficulty", ""), number,
                   1.0 if verdict.reward else 0.0, verdict.reason, result.exit_reason, result.steps,
                   result.tool_errors, result.error)


def evaluate(endpoint: EndpointConfig, tasks: list[dict], k: int, sandbox_config: dict,
             limits: AgentLimits = AgentLimits(max_steps=10), on_attempt: Callable[[Attempt, int, int], None] = None
             ) -> list[Attempt]:
    """k attempts at each task; ``on_attempt(attempt, done, total)`` after each one."""
    sandbox = Sandbox(sandbox_config)
    attempts, total = [], len(tasks) * k
    for task in tasks:
        for number in range(1, k + 1):
            attempts.append(attempt_task(endpoint, sandbox, task, number, limits))
            if on_attempt:
                on_attempt(attempts[-1], len(attempts), total)
    return attempts


class LocalModelServer:
    """``training.engine.serve`` in a child process, as a context manager yielding its endpoint."""

    def __init__(self, model_dir: str, max_new_tokens: int = 256, cwd: str | Path | None = None,
                 log_path: str | Path | None = None, startup_timeout_s: float = 300, temperature: float = 1.0):
        if not (Path(model_dir) / "config.json").is_file():
            raise ValueError(f"model not found: {model_dir} holds no saved model")
        self.model_dir, self.max_new_tokens = str(model_dir), max_new_tokens
        self.cwd, self.log_path, self.timeout = cwd, log_path, startup_timeout_s
        self.temperature = temperature
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> EndpointConfig:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
        stderr = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "training.engine.serve", "--model", self.model_dir,
             "--max-new-tokens", str(self.max_new_tokens), "--temperature", str(self.temperature)],
            cwd=self.cwd, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True,
        )
        line = self.proc.stdout.readline()  # blocks until the model is loaded (or the child died)
        if not line.startswith("LISTENING "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the local model server did not start (exit {self.proc.returncode}); "
                               f"see {self.log_path or 'its output'}")
        port = int(line.split()[1])
        return EndpointConfig("openai_chat", f"http://127.0.0.1:{port}/v1", "local", api_key="local",
                              max_tokens=self.max_new_tokens, timeout_s=self.timeout)

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
