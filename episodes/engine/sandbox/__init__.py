"""Sandbox executors (plain Python, no Django).

``make_executor("local" | "docker", cache_dir)`` builds a backend; ``probe_all`` reports what
this host supports without ever raising for a missing or broken backend.
"""
from __future__ import annotations

from pathlib import Path

from episodes.engine.sandbox.base import (
    KILLED_CPU,
    KILLED_FILE_SIZE,
    KILLED_MEMORY,
    KILLED_PIDS,
    KILLED_TIMEOUT,
    TRUNCATION_MARKER,
    EnvironmentSpec,
    ExecResult,
    Executor,
    Limits,
    Mount,
    ProbeReport,
    SandboxError,
)

BACKENDS = ("local", "docker")


def make_executor(backend: str, cache_dir: Path, docker_url: str | None = None, *,
                  docker_warm: bool = True) -> Executor:
    """Return the executor for ``backend`` ("local" or "docker"); the docker backend talks to
    ``docker_url``, else to what ``DOCKER_HOST`` names, as the Docker SDK would."""
    cache_dir = Path(cache_dir)
    if backend == "local":
        from episodes.engine.sandbox.local import LocalExecutor

        return LocalExecutor(cache_dir)
    if backend == "docker":
        from episodes.engine.sandbox.docker_backend import DockerExecutor  # lazy: needs the docker SDK

        return DockerExecutor.from_env(cache_dir, url=docker_url, warm=docker_warm)
    raise ValueError(f"unknown sandbox backend {backend!r}; expected one of {BACKENDS}")


def probe_all(cache_dir: Path, docker_url: str | None = None) -> list[ProbeReport]:
    """Probe every backend; failures (including ImportError) become unavailable reports."""
    reports: list[ProbeReport] = []
    for backend in BACKENDS:
        try:
            report = make_executor(backend, cache_dir, docker_url=docker_url).probe()
        except Exception as e:  # noqa: BLE001 - a probe must never take the caller down
            report = ProbeReport(
                backend=backend, available=False, detail=f"{type(e).__name__}: {e}"
            )
        reports.append(report)
    return reports


__all__ = [
    "BACKENDS",
    "KILLED_CPU",
    "KILLED_FILE_SIZE",
    "KILLED_MEMORY",
    "KILLED_PIDS",
    "KILLED_TIMEOUT",
    "TRUNCATION_MARKER",
    "EnvironmentSpec",
    "ExecResult",
    "Executor",
    "Limits",
    "Mount",
    "ProbeReport",
    "SandboxError",
    "make_executor",
    "probe_all",
]
