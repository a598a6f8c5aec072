"""The sandbox as a GRPO environment (TRL ``environment_factory``), no Django.

One ``BugEnvironment`` per rollout (TRL pools instances and calls ``reset`` again for the next
prompt). ``reset(**row)`` checks out the bug's buggy code in a fresh workspace with the real
sandbox; the public methods ``edit``, ``shell``, ``submit`` and ``view`` are the built-in
agent's tools — generated from ``TOOL_SCHEMAS`` (name, docstring, signature), so the schemas
TRL renders into the prompt from them (``get_json_schema``) are ``TOOL_SCHEMAS`` exactly, and
delegating to the very same ``Workbench`` the episodes use — so a student trained here sees the
tools, and the error texts, it will be evaluated with. The prompt itself is the RL row's
(``task_format.prompt_messages``: the built-in agent's system prompt and task). The reward, ``verifier_reward``, is the
episodes' own verdict: ``episodes.engine.solve.reward.grade`` on a pristine checkout with the bug
record's verifier and tests, as 1.0 / 0.0.

The row's ``task`` column (a JSON string, see ``training.datasets.rl_task``) says where the
code comes from and how to test it; the sandbox config (backend, work dir) comes from the job.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
import threading
from pathlib import Path

from episodes.engine.solve.agent.tools import TOOL_SCHEMAS, Workbench
from episodes.engine.solve.reward import grade
from episodes.engine.sandbox import Limits, make_executor
from episodes.engine.validate.validator import BugSpec, RepoSpec, prepare_repo
from episodes.engine.git.workspace import WorkspaceFactory

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0
# Tool outputs go back into the model's context: keep them short (the episodes' agent uses
# its own, larger limit; a small student's context is what bounds this one).
DEFAULT_MAX_OUTPUT_CHARS = 4000


class Sandbox:
    """The executor, workspaces and per-task repository specs of one training process."""

    def __init__(self, config: dict):
        self.work_dir = Path(config.get("work_dir") or "/var/tmp/bugforge")
        self.executor = make_executor(config.get("backend") or "local", self.work_dir,
                                      docker_url=config.get("docker_url") or None)
        self.workspaces = WorkspaceFactory(self.work_dir)
        self.limits = Limits(timeout_s=float(config.get("timeout_s") or DEFAULT_TIMEOUT_S))
        self.max_output_chars = int(config.get("max_output_chars") or DEFAULT_MAX_OUTPUT_CHARS)
        self._specs: dict[str, RepoSpec] = {}
        self._lock = threading.Lock()

    def repo_spec(self, task: dict) -> RepoSpec:
        """Mirror and test environment of the task's repository (both cached on disk and here),
        built by the same engine function as ``episodes.sandboxes.repo_spec``, from the same
        plain data, so training and episodes share one environment."""
        key = json.dumps([task["source"], task["commit"], task.get("environment")], sort_keys=True)
        with self._lock:
            if key not in self._specs:
                env = task.get("environment") or {}
                env = {**env, "name": env.get("name") or task.get("repository") or "repo"}
                self._specs[key] = prepare_repo(self.executor, self.workspaces, task["source"], task["commit"], env,
                                                task.get("test_command") or "")
            return self._specs[key]


@functools.lru_cache(maxsize=None)
def _sandbox(config_json: str) -> Sandbox:
    return Sandbox(json.loads(config_json))


class BugEnvironment:
    """A buggy checkout of one bug, with the built-in agent's tools acting on it."""

    def __init__(self, sandbox: Sandbox):
        self._sandbox = sandbox
        self._stack: contextlib.ExitStack | None = None
        self._task: dict | None = None
        self._bench: Workbench | None = None
        self._reward: float | None = None

    def reset(self, task: str, **row) -> str | None:
        """Check out the buggy code of the row's bug (the previous rollout's workspace goes)."""
        self._close()
        self._task = json.loads(task) if isinstance(task, str) else dict(task)
        spec = self._sandbox.repo_spec(self._task)
        self._stack = contextlib.ExitStack()
        workspace = self._stack.enter_context(
            self._sandbox.workspaces.task_checkout(spec.mirror, spec.commit, patch=self._task["patch"])
        )
        self._bench = Workbench(self._sandbox.executor, workspace, self._sandbox.limits,
                                environment=spec.environment, max_output_chars=self._sandbox.max_output_chars)
        self._reward = None
        return None

    # The tools — ``edit``, ``shell``, ``submit``, ``view`` — are generated from TOOL_SCHEMAS
    # below the class (see ``_tool_method``).

    # --- reward and clean-up ----------------------------------------------------------------

    def _call(self, name: str, arguments: dict) -> str:
        if self._bench is None:
            return "error: no workspace (the environment was not reset)"
        return self._bench.call(name, arguments)

    def _grade(self) -> float:
        """1.0 when the episodes' grader accepts the workspace's source change, else 0.0."""
        if self._reward is None:
            if self._bench is None or self._task is None:
                return 0.0
            spec = self._sandbox.repo_spec(self._task)
            result = grade(
                self._sandbox.executor, self._sandbox.workspaces, spec,
                BugSpec(patch=self._task["patch"], verifier=self._task["verifier"]),
                fail_to_pass=self._task.get("fail_to_pass") or (), pass_to_pass=self._task.get("pass_to_pass") or (),
                workspace=self._bench.workspace, limits=self._sandbox.limits, run_suite_after_failed_verifier=False,
            )
            self._reward = 1.0 if result.reward else 0.0
            self._reason = result.reason
        return self._reward

    def _close(self) -> None:
        if self._stack is not None:
            try:
                self._stack.close()  # removes the worktree
            except Exception:  # noqa: BLE001 - a clean-up problem must not end the training
                log.exception("could not remove a GRPO workspace")
        self._stack, self._bench = None, None


_JSON_TYPES = {"string": str, "integer": int, "number": float, "boolean": bool}


def tool_docstring(function: dict) -> str:
    """A Google-style docstring that ``transformers.utils.get_json_schema`` parses back into
    ``function``'s description and argument descriptions, word for word."""
    lines = [function["description"]]
    properties = function["parameters"].get("properties") or {}
    if properties:
        lines += ["", "Args:"] + [f"    {name}: {prop['description']}" for name, prop in properties.items()]
    return "\n".join(lines)


def _tool_method(tool: dict):
    """The ``BugEnvironment`` method for one of TOOL_SCHEMAS, made from the schema itself: its
    name, docstring and signature (argument names and order, JSON types as type hints, optional
    arguments defaulting to None, no return hint) are what ``get_json_schema`` — which TRL uses
    to render an environment's tools into the prompt — turns back into exactly ``tool``. The
    call goes to the episodes' ``Workbench.call``, so arguments are checked by the same
    ``parse_arguments`` and mistakes answered with the same ``error:`` texts as in evaluation."""
    function = tool["function"]
    name = function["name"]
    parameters = function["parameters"]
    required = set(parameters.get("required") or ())
    names = list(parameters.get("properties") or {})

    def method(self, *args, **arguments):
        # TRL passes the model's arguments by name, unchecked (unknown or missing ones included:
        # ``parse_arguments`` tells the model); Python callers may pass them in order too.
        if len(args) > len(names):
            raise TypeError(f"{name}() takes at most {len(names)} positional argument(s)")
        for arg, value in zip(names, args):
            if arg in arguments:
                raise TypeError(f"{name}() got multiple values for argument {arg!r}")
            arguments[arg] = value
        return self._call(name, arguments)

    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations = {}
    for arg, prop in (parameters.get("properties") or {}).items():
        annotations[arg] = _JSON_TYPES[prop["type"]]
        params.append(inspect.Parameter(arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotations[arg],
                                        default=inspect.Parameter.empty if arg in required else None))
    method.__name__ = name
    method.__qualname__ = f"BugEnvironment.{name}"
    method.__doc__ = tool_docstring(function)
    method.__signature__ = inspect.Signature(params)
    method.__annotations__ = annotations
    return method


for _tool in TOOL_SCHEMAS:
    setattr(BugEnvironment, _tool["function"]["name"], _tool_method(_tool))
del _tool


def environment_factory(sandbox_config: dict):
    """The ``environment_factory`` for GRPOTrainer: a fresh ``BugEnvironment`` per call, all
    sharing one sandbox (executor, workspaces, cached environments) per process."""
    sandbox = _sandbox(json.dumps(sandbox_config or {}, sort_keys=True))

    def factory() -> BugEnvironment:
        return BugEnvironment(sandbox)

    return factory


ROLLOUTS_ENV = "BUGFORGE_ROLLOUTS_FILE"  # where each graded rollout is appended, {bug_id, reward} a line


def verifier_reward(completions, environments=None, **kwargs) -> list[float]:
    """The verifier verdict on each rollout's workspace, as 1.0 (fixed) or 0.0. With
    ``$BUGFORGE_ROLLOUTS_FILE`` set, each graded rollout is appended there as a JSON line
    (the job records them as solve attempts: measured difficulty)."""
    if environments is None:
        raise ValueError("verifier_reward needs the GRPO environments (environment_factory)")
    rewards = [env._grade() for env in environments]
    path = os.environ.get(ROLLOUTS_ENV)
    if path:
        lines = [json.dumps({"bug_id": env._task.get("bug_id"), "reward": r})
                 for env, r in zip(environments, rewards) if getattr(env, "_task", None)]
        if lines:
            with open(path, "a") as fh:
                fh.write("\n".join(lines) + "\n")
    return rewards


def close_all(pool: dict) -> None:
    """Remove every workspace still held by pooled environments (end of training)."""
    for instances in (pool or {}).values():
        for env in instances:
            if isinstance(env, BugEnvironment):
                env._close()
