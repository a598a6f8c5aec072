"""The one executor interface every sandbox backend implements (plain Python, no Django).

A backend runs an argv inside a workspace directory with no network, caps on wall time,
memory, processes, CPU, file size and captured output, and reports what happened as an
``ExecResult``. ``python`` on the sandbox PATH is the repository's environment (a venv for
the local backend, an image for the Docker backend), built once per ``EnvironmentSpec``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

TRUNCATION_MARKER = "\n[... output truncated by the BugForge sandbox ...]\n"


class SandboxError(RuntimeError):
    """The sandbox itself could not run the command (not the command failing)."""


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 120.0
    memory_mb: int = 2048
    pids: int = 256
    cpu_seconds: int | None = None  # None: only the wall clock applies
    file_size_mb: int = 256
    output_bytes: int = 1_000_000  # per stream; the rest is dropped and marked
    network: bool = False


# Why a run ended, as recorded on VerificationRun rows and shown to staff.
KILLED_TIMEOUT = "timeout"
KILLED_MEMORY = "memory"
KILLED_CPU = "cpu"
KILLED_PIDS = "pids"
KILLED_FILE_SIZE = "file_size"


@dataclass(frozen=True)
class Mount:
    """An extra host path made visible inside the sandbox (read-only unless ``writable``):
    e.g. the teacher CLIs' install, a per-run state directory, a directory holding the
    recording gateway's unix socket. Backends that cannot mount raise SandboxError."""

    source: Path
    target: str
    writable: bool = False


@dataclass
class ExecResult:
    exit_code: int | None  # None when the sandbox could not report one (killed hard)
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    killed_by: str | None = None  # one of the KILLED_* constants, or None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    backend: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.killed_by is None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EnvironmentSpec:
    """What a repository's test environment needs; built once per distinct spec and reused.

    ``pip_packages`` are requirement strings installed into the environment (pytest is always
    added by the backend if missing); ``setup_command`` is an optional shell command run once
    with the environment active and the repository checkout as working directory.
    """

    name: str
    pip_packages: tuple[str, ...] = ()
    setup_command: str = ""
    python: str = "python3"
    # the source's git tree when there is a setup_command: what it builds depends on the source
    source_tree: str = ""

    @classmethod
    def for_repository(cls, environment: dict, source_dir: Path) -> "EnvironmentSpec":
        """A repository's test environment as episodes and training both build it, from plain
        data ``{"name", "pip_packages", "setup_command", "python"}`` (what
        ``episodes.sandboxes.environment_data`` makes of a Repository row, and what an RL row's
        task carries): its packages plus coverage.py (the baseline's coverage map); with an
        install step, the source tree is part of what it is (the step's build outputs depend on it)."""
        from episodes.engine.validate.coverage_map import COVERAGE_PACKAGE
        from episodes.engine.git.workspace import git

        setup_command = environment.get("setup_command") or ""
        return cls(
            name=environment.get("name") or "repo",
            pip_packages=(*environment.get("pip_packages", ()), COVERAGE_PACKAGE), setup_command=setup_command,
            python=environment.get("python") or "python3",
            source_tree=git("rev-parse", "HEAD^{tree}", cwd=source_dir).strip() if setup_command else "",
        )

    @property
    def key(self) -> str:
        """By content only: repositories with the same environment share one build."""
        content = {k: v for k, v in asdict(self).items() if k != "name"}
        return f"env-{hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]}"


@dataclass
class ProbeReport:
    backend: str
    available: bool
    detail: str
    features: dict = field(default_factory=dict)


@runtime_checkable
class Executor(Protocol):
    name: str

    def probe(self) -> ProbeReport:
        """What this host supports for this backend (cheap; safe to call at start-up)."""

    def ensure_environment(self, spec: EnvironmentSpec, source_dir: Path) -> str:
        """Build the environment for ``spec`` once (cached by ``spec.key``); return its id."""

    def run(
        self,
        argv: list[str],
        workdir: Path,
        *,
        environment: str | None = None,
        env: dict[str, str] | None = None,
        limits: Limits = Limits(),
    ) -> ExecResult:
        """Run ``argv`` with ``workdir`` as the only writable place; never raises for the
        command's own failures (those are in the result); raises SandboxError when the
        sandbox itself is broken."""
