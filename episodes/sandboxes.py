"""Django glue for the engine: the configured executor, workspaces and repository specs."""
from __future__ import annotations

from functools import lru_cache

from django.conf import settings

from episodes.engine.sandbox import EnvironmentSpec, Limits, make_executor, probe_all
from episodes.engine.validate.validator import RepoSpec, Validator, prepare_repo
from episodes.engine.git.workspace import WorkspaceFactory


@lru_cache(maxsize=None)
def executor(backend: str | None = None):
    return make_executor(
        backend or settings.BUGFORGE_SANDBOX,
        cache_dir=settings.BUGFORGE_WORK_DIR,
        docker_url=settings.BUGFORGE_DOCKER_URL or None,
        docker_warm=settings.BUGFORGE_DOCKER_WARM,
    )


@lru_cache(maxsize=None)
def workspaces() -> WorkspaceFactory:
    return WorkspaceFactory(settings.BUGFORGE_WORK_DIR)


def default_limits(repo=None) -> Limits:
    """The run limits; with a baselined repository, the wall clock scales with its suite:
    a mutation that loops forever should cost seconds, not the global cap."""
    timeout = settings.BUGFORGE_RUN_TIMEOUT
    if repo is not None and repo.baseline_duration_s:
        timeout = min(timeout, max(settings.BUGFORGE_MIN_RUN_TIMEOUT, 10 * repo.baseline_duration_s))
    return Limits(timeout_s=timeout)


def probe_reports():
    return probe_all(settings.BUGFORGE_WORK_DIR, docker_url=settings.BUGFORGE_DOCKER_URL or None)


def validator(repo=None, **kwargs) -> Validator:
    """A Validator with the configured sandbox, limits (scaled to ``repo``'s suite) and suite
    settings; ``kwargs`` go to Validator (flake rule, workers, callbacks)."""
    kwargs.setdefault("test_timeout_s", settings.BUGFORGE_TEST_TIMEOUT)
    kwargs.setdefault("suite_scope", settings.BUGFORGE_SUITE_SCOPE)
    return Validator(executor(), workspaces(), default_limits(repo), **kwargs)


def environment_data(repo) -> dict:
    """The repository's test environment as plain data (see ``EnvironmentSpec.for_repository``):
    what the engine builds it from, here and in an RL row's task (``training.datasets.rl_task``)."""
    return {
        "name": repo.name,
        "pip_packages": list(repo.environment_spec.get("pip_packages", ())),
        "setup_command": repo.install_command,
        "python": repo.environment_spec.get("python", ""),
    }


def environment_spec(repo, source_dir) -> EnvironmentSpec:
    return EnvironmentSpec.for_repository(environment_data(repo), source_dir)


def repo_spec(repo, with_baseline: bool = True) -> RepoSpec:
    """Fetch the mirror and build the environment (both cached), then describe the repo."""
    return prepare_repo(
        executor(), workspaces(), repo.source, repo.pinned_commit, environment_data(repo), repo.test_command,
        baseline=repo.baseline_tests if with_baseline else {}, coverage=repo.coverage if with_baseline else {},
    )
