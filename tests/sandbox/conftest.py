"""Fixtures for the sandbox suites: an ``executor`` per backend and workdirs the sandbox uid
can reach (pytest's own tmp_path lives under a mode-700 /tmp/pytest-of-root).

No database and no Django settings are needed; the suite also runs with pytest-django on.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from episodes.engine.sandbox import Limits  # noqa: E402

# A base directory that uid 65534 can traverse (every ancestor o+x), outside /tmp and /root.
SANDBOX_TMP_PARENT = os.environ.get("BUGFORGE_SANDBOX_TEST_TMP", "/var/tmp")

FAST = Limits(timeout_s=5, memory_mb=256, pids=64, file_size_mb=16, output_bytes=100_000)


@pytest.fixture(scope="session")
def sandbox_base():
    base = Path(tempfile.mkdtemp(prefix="bugforge-sandbox-tests-", dir=SANDBOX_TMP_PARENT))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def sandbox_cache_dir(sandbox_base):
    d = sandbox_base / "cache"
    d.mkdir()
    os.chmod(d, 0o755)
    return d


@pytest.fixture
def workdir(sandbox_base):
    d = sandbox_base / f"work-{uuid.uuid4().hex[:10]}"
    d.mkdir()
    os.chmod(d, 0o755)
    return d


@pytest.fixture(scope="session")
def local_executor(sandbox_cache_dir):
    from episodes.engine.sandbox.local import LocalExecutor

    ex = LocalExecutor(sandbox_cache_dir)
    if ex.bwrap is None or sys.platform != "linux":
        # Only a missing tool skips; weak isolation must fail the containment cases instead.
        pytest.skip(
            "!!! LOCAL SANDBOX BACKEND UNAVAILABLE ON THIS HOST - containment NOT tested: "
            f"{ex.probe().detail} !!!"
        )
    return ex


def _docker_executor(cache_dir: Path):
    try:
        from episodes.engine.sandbox.docker_backend import DockerExecutor
    except ImportError as e:
        pytest.skip(
            "!!! DOCKER SANDBOX BACKEND NOT TESTED: episodes.engine.sandbox.docker_backend "
            f"cannot be imported ({e}) !!!"
        )
    try:
        ex = DockerExecutor.from_env(cache_dir)
        report = ex.probe()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"!!! DOCKER SANDBOX BACKEND NOT TESTED: {type(e).__name__}: {e} !!!")
    if not report.available:
        pytest.skip(f"!!! DOCKER SANDBOX BACKEND NOT TESTED (probe unavailable): "
                    f"{report.detail} !!!")
    return ex


@pytest.fixture(scope="session")
def _docker_executor_session(sandbox_cache_dir):
    return _docker_executor(sandbox_cache_dir)


@pytest.fixture(params=["local", "docker"])
def executor(request):
    if request.param == "local":
        return request.getfixturevalue("local_executor")
    return request.getfixturevalue("_docker_executor_session")


@pytest.fixture
def fast_limits():
    return FAST


@pytest.fixture(autouse=True)
def _isolated():
    """Overrides tests/conftest.py's autouse ``_isolated(settings, ...)`` for this directory:
    the sandbox suites are plain Python (no Django settings, Redis or database), so they run
    with ``-p no:django`` as well as with pytest-django enabled."""
    yield
