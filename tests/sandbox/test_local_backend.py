"""The local (bubblewrap) backend: environments, pytest inside them, env vars, exit codes,
and the package-level helpers (make_executor / probe_all)."""
from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from episodes.engine.sandbox import (
    EnvironmentSpec,
    Executor,
    Limits,
    ProbeReport,
    SandboxError,
    make_executor,
    probe_all,
)
from episodes.engine.sandbox.local import ENV_MARKER, LocalExecutor

from .conftest import FAST

SPEC = EnvironmentSpec(name="sandbox-test", pip_packages=("iniconfig",),
                       setup_command="touch \"$VIRTUAL_ENV/setup-ran\"")

NETWORK_ERRORS = ("No matching distribution", "Could not find a version", "NewConnectionError",
                  "Temporary failure in name resolution", "Network is unreachable")


@pytest.fixture(scope="module")
def built_env(local_executor, sandbox_base):
    src = sandbox_base / "env-src"
    src.mkdir(exist_ok=True)
    results: list = []

    def build():
        try:
            results.append(local_executor.ensure_environment(SPEC, src))
        except Exception as e:  # noqa: BLE001
            results.append(e)

    # Two workers racing for the same spec: one builds, the other waits and reuses it.
    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        if isinstance(r, SandboxError) and any(s in str(r) for s in NETWORK_ERRORS):
            pytest.skip(f"!!! cannot build a test environment: no package index here: {r} !!!")
        if isinstance(r, Exception):
            raise r
    assert results[0] == results[1] == SPEC.key
    return results[0]


def test_executor_satisfies_protocol(local_executor):
    assert isinstance(local_executor, Executor)
    assert local_executor.name == "local"


def test_probe_reports_isolation(local_executor):
    report = local_executor.probe()
    assert report.available, report
    f = report.features
    assert f["user_ns"] and f["pid_ns"] and f["net_isolated"] and f["root_hidden"]
    assert f["uid_inside"] == 65534


def test_environment_is_built_once_and_reused(local_executor, built_env, sandbox_base):
    path = local_executor.environment_path(built_env)
    marker = path / ENV_MARKER
    assert marker.is_file()
    info = json.loads(marker.read_text())
    assert info["key"] == SPEC.key
    assert (path / "setup-ran").exists(), "setup_command did not run"
    mtime = marker.stat().st_mtime_ns
    ino = path.stat().st_ino
    # Only one build ran (the racing thread reused it): no leftover temp build dirs.
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".build-")] == []
    again = local_executor.ensure_environment(SPEC, sandbox_base / "env-src")
    assert again == built_env
    assert marker.stat().st_mtime_ns == mtime and path.stat().st_ino == ino
    # A fresh executor on the same cache (another worker process) reuses it too.
    other = LocalExecutor(local_executor.cache_dir)
    assert other.ensure_environment(SPEC, sandbox_base / "env-src") == built_env
    assert marker.stat().st_mtime_ns == mtime


def test_environment_python_is_on_path_and_readonly(local_executor, built_env, workdir):
    env_path = local_executor.environment_path(built_env)
    code = (
        "import sys, pytest, iniconfig, os\n"
        "print(sys.prefix)\nprint(pytest.__version__)\n"
        "try:\n    open(os.path.join(sys.prefix, 'x'), 'w')\n    print('env writable')\n"
        "except OSError:\n    print('env read-only')\n"
    )
    r = local_executor.run(["python", "-c", code], workdir, environment=built_env,
                           limits=replace(FAST, timeout_s=30))
    assert r.exit_code == 0, r
    prefix, version, ro = r.stdout.splitlines()[:3]
    assert prefix == str(env_path)
    assert version == "9.2.0"
    assert ro == "env read-only"


def test_pytest_runs_inside_environment_with_junit(local_executor, built_env, workdir):
    (workdir / "test_sample.py").write_text(
        "def test_passes():\n    assert 1 + 1 == 2\n\n"
        "def test_fails():\n    assert 1 + 1 == 3\n"
    )
    r = local_executor.run(
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=report.xml",
         "test_sample.py"],
        workdir, environment=built_env, limits=Limits(timeout_s=60, memory_mb=1024, pids=64),
    )
    assert r.exit_code == 1, r  # pytest: some tests failed
    assert not r.timed_out and r.killed_by is None
    assert "1 failed, 1 passed" in r.stdout
    report = workdir / "report.xml"
    assert report.is_file(), "JUnit XML not written into the workdir"
    root = ET.parse(report).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["test_fails"].find("failure") is not None
    assert cases["test_passes"].find("failure") is None


def test_pytest_exit_code_zero_when_all_pass(local_executor, built_env, workdir):
    (workdir / "test_ok.py").write_text("def test_ok():\n    pass\n")
    r = local_executor.run(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           workdir, environment=built_env, limits=replace(FAST, timeout_s=60,
                                                                          memory_mb=1024))
    assert r.exit_code == 0, r
    assert r.ok


def test_env_vars_pass_through(local_executor, workdir):
    r = local_executor.run(
        ["python", "-c", "import os; print(os.environ['BUGFORGE_X']); "
                         "print(os.access(os.environ['HOME'], os.W_OK))"],
        workdir, env={"BUGFORGE_X": "hello world"}, limits=FAST,
    )
    assert r.exit_code == 0, r
    assert r.stdout.splitlines() == ["hello world", "True"]


def test_python_without_environment_is_system_python(local_executor, workdir):
    r = local_executor.run(["python", "-c", "import sys; print(sys.executable, sys.version)"],
                           workdir, limits=FAST)
    assert r.exit_code == 0, r
    assert r.stdout.startswith("/") and "3.11" in r.stdout


@pytest.mark.parametrize("code,expected", [
    ("import sys; sys.exit(0)", 0),
    ("import sys; sys.exit(3)", 3),
    ("import sys; sys.exit(42)", 42),
    ("raise SystemExit('boom')", 1),
    ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", 128 + 15),
])
def test_exit_codes_are_faithful(local_executor, workdir, code, expected):
    r = local_executor.run(["python", "-c", code], workdir, limits=FAST)
    assert r.exit_code == expected, r
    assert r.ok is (expected == 0)
    assert not r.timed_out and r.killed_by is None


def test_stdout_and_stderr_are_separate(local_executor, workdir):
    r = local_executor.run(["sh", "-c", "echo out; echo err >&2; exit 5"], workdir, limits=FAST)
    assert (r.exit_code, r.stdout, r.stderr) == (5, "out\n", "err\n")


def test_missing_command_is_a_command_failure_not_a_sandbox_error(local_executor, workdir):
    r = local_executor.run(["definitely-not-a-command-xyz"], workdir, limits=FAST)
    assert r.exit_code != 0


def test_unknown_environment_is_a_sandbox_error(local_executor, workdir):
    with pytest.raises(SandboxError):
        local_executor.run(["python", "-c", "pass"], workdir, environment="nope-123",
                           limits=FAST)
    with pytest.raises(SandboxError):
        local_executor.run(["python", "-c", "pass"], workdir, environment="../../etc",
                           limits=FAST)


def test_unreachable_workdir_is_a_sandbox_error(local_executor, tmp_path):
    # pytest's tmp_path is under /tmp/pytest-of-root (mode 700): uid 65534 cannot reach it.
    with pytest.raises(SandboxError, match="not searchable"):
        local_executor.run(["python", "-c", "pass"], tmp_path, limits=FAST)


def test_make_executor_and_probe_all(sandbox_cache_dir):
    ex = make_executor("local", sandbox_cache_dir)
    assert isinstance(ex, LocalExecutor)
    with pytest.raises(ValueError):
        make_executor("bogus", sandbox_cache_dir)
    reports = probe_all(sandbox_cache_dir)
    assert [r.backend for r in reports] == ["local", "docker"]
    assert all(isinstance(r, ProbeReport) for r in reports)
    assert reports[0].available
    # The docker report is whatever the host allows, but never an exception.
    assert isinstance(reports[1].available, bool) and reports[1].detail


def test_probe_all_survives_a_broken_docker_backend(sandbox_cache_dir, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "episodes.engine.sandbox.docker_backend", None)
    reports = probe_all(sandbox_cache_dir, docker_url="unix:///nonexistent.sock")
    docker = [r for r in reports if r.backend == "docker"][0]
    assert docker.available is False
    assert "ImportError" in docker.detail or "ModuleNotFoundError" in docker.detail


def test_concurrent_runs_do_not_interfere(local_executor, sandbox_base):
    dirs = []
    for i in range(4):
        d = sandbox_base / f"conc-{i}"
        d.mkdir(exist_ok=True)
        dirs.append(d)
    results: dict[int, object] = {}

    def go(i):
        results[i] = local_executor.run(
            ["python", "-c", f"import time; time.sleep(0.3); print({i})"], dirs[i], limits=FAST)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert results[i].exit_code == 0 and results[i].stdout.strip() == str(i)
