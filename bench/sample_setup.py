"""Shared by the benchmarks: the sample repository as a git repo in a throwaway work dir,
with a sandbox executor and its test environment built."""
from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from episodes.engine.sandbox import EnvironmentSpec, make_executor  # noqa: E402
from episodes.engine.repos.samples import build_sample_git_repo  # noqa: E402
from episodes.engine.git.workspace import WorkspaceFactory  # noqa: E402


@dataclass
class Sample:
    work: Path
    src: Path
    commit: str
    workspaces: WorkspaceFactory
    executor: object
    mirror: Path
    environment: str

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def sample_setup(backend: str = "local", pip_packages: tuple[str, ...] = (), docker_url: str | None = None) -> Sample:
    work = Path(tempfile.mkdtemp(prefix="bugforge-bench-", dir="/var/tmp"))
    work.chmod(0o755)  # the sandbox uid must reach the workspaces below it
    src = work / "cartcalc"
    commit = build_sample_git_repo(src)
    workspaces = WorkspaceFactory(work / "sandbox")
    executor = make_executor(backend, cache_dir=work / "sandbox", docker_url=docker_url)
    mirror = workspaces.ensure_mirror(str(src), commit)
    with workspaces.checkout(mirror, commit) as checkout:
        environment = executor.ensure_environment(EnvironmentSpec(name="cartcalc", pip_packages=pip_packages), checkout)
    return Sample(work, src, commit, workspaces, executor, mirror, environment)
