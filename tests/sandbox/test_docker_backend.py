"""Real tests of the Docker backend against Podman's Docker-compatible API service.

A session fixture starts the service with ``scripts/podman-service.sh`` (installing podman with
apt-get on a fresh machine). These tests skip — loudly, "DOCKER BACKEND NOT TESTED: ..." — only
when podman cannot be installed on the host (script exit status 3); any other failure to start
the engine fails them. The base image is cached across runs under /var/tmp.
"""
from __future__ import annotations

import base64
import hashlib
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
import warnings
import zipfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from episodes.engine.sandbox.base import (
    KILLED_MEMORY,
    KILLED_TIMEOUT,
    TRUNCATION_MARKER,
    EnvironmentSpec,
    Limits,
)
from episodes.engine.sandbox.docker_backend import LABEL, DockerExecutor

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "podman-service.sh"
CACHE_DIR = Path(os.environ.get("BUGFORGE_SANDBOX_TEST_CACHE", "/var/tmp/bugforge-docker-test-cache"))
NOT_TESTED = "DOCKER BACKEND NOT TESTED:"
SESSION_LABEL = "bugforge.sandbox.test-session"
SESSION_ID = uuid.uuid4().hex[:12]


@pytest.fixture(autouse=True)
def _isolated():
    """Shadows tests/conftest.py's Django-settings autouse fixture: these tests need no Django
    (they also run with ``-p no:django``)."""
    yield


def _skip_loudly(reason: str):
    message = f"{NOT_TESTED} {reason}"
    warnings.warn(message, UserWarning, stacklevel=2)
    sys.__stderr__.write(f"\n{'!' * 78}\n{message}\n{'!' * 78}\n")
    pytest.skip(message)


@pytest.fixture(scope="session")
def docker_url() -> str:
    try:
        proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"scripts/podman-service.sh did not run: {exc}")
    if proc.returncode == 3:
        _skip_loudly(f"podman cannot be installed on this host: {proc.stderr.strip()[-1000:]}")
    if proc.returncode != 0:
        pytest.fail(f"scripts/podman-service.sh failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("export BUGFORGE_DOCKER_URL="), proc.stdout
    return last.split("=", 1)[1]


@pytest.fixture(scope="session")
def dx(docker_url) -> DockerExecutor:
    # other suites may share the engine: our containers carry a label of this session's own
    ex = DockerExecutor(docker_url, CACHE_DIR, labels={SESSION_LABEL: SESSION_ID})
    report = ex.probe()
    assert report.available, report.detail
    t0 = time.monotonic()
    ex.ensure_base_image()
    ex.session_base_s = time.monotonic() - t0  # first call: build or cache hit
    yield ex
    ex.close()


@pytest.fixture
def workspace(tmp_path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


def _our_containers(ex: DockerExecutor) -> list:
    found = ex.client.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={SESSION_ID}"})
    assert all(c.labels.get(LABEL) == "1" for c in found)
    return found


def _idle_warm(ex: DockerExecutor) -> dict:
    return {w.container.id: w for ws in ex._warm_idle.values() for w in ws}


def _left_behind(ex: DockerExecutor) -> list[str]:
    """What a finished run may not leave: any container of ours except the idle warm ones
    (kept for the next run), and any process in those besides their supervisor."""
    idle = _idle_warm(ex)
    left = []
    for c in _our_containers(ex):
        if c.id not in idle:
            left.append(f"container {c.name} ({c.status})")
            continue
        procs = c.top().get("Processes") or []
        if len(procs) != 1:
            left.append(f"processes in {c.name}: {procs}")
    return left


# ---------------------------------------------------------------------------- API / probe
def test_probe_unreachable_never_raises(tmp_path):
    report = DockerExecutor(f"unix://{tmp_path}/nope.sock", tmp_path).probe()
    assert report.available is False
    assert "not reachable" in report.detail


def test_from_env_prefers_bugforge_url(monkeypatch, tmp_path):
    monkeypatch.setenv("BUGFORGE_DOCKER_URL", "unix:///a.sock")
    monkeypatch.setenv("DOCKER_HOST", "unix:///b.sock")
    assert DockerExecutor.from_env(tmp_path).base_url == "unix:///a.sock"
    monkeypatch.delenv("BUGFORGE_DOCKER_URL")
    assert DockerExecutor.from_env(tmp_path).base_url == "unix:///b.sock"
    monkeypatch.delenv("DOCKER_HOST")
    assert DockerExecutor.from_env(tmp_path).base_url == "unix:///var/run/docker.sock"


def test_probe_reports_engine(dx):
    report = dx.probe()
    assert report.available and report.backend == "docker"
    assert report.features["api_version"]
    assert report.features["engine"] in ("podman", "docker")


# ---------------------------------------------------------------------------- images
def test_base_image_built_once_and_reused(dx):
    t0 = time.monotonic()
    tag = dx.ensure_base_image()
    fresh = DockerExecutor(dx.base_url, CACHE_DIR)  # another worker: must find it, not rebuild
    assert fresh.ensure_base_image() == tag
    assert "base" not in fresh.last_build_s  # found, not rebuilt
    image = dx.client.images.get(tag)
    assert image.labels.get(f"{LABEL}.base") == "1"
    print(f"\nbase image {tag}: first call this session {dx.session_base_s:.2f}s "
          f"(built: {'base' in dx.last_build_s}), cached {time.monotonic() - t0:.3f}s")


def _wheel(dest: Path, name: str, body: bytes) -> Path:
    files = {
        f"{name}/__init__.py": body,
        f"{name}-0.1.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n".encode(),
        f"{name}-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                       b"Tag: py3-none-any\n",
    }
    record = "".join(
        f"{k},sha256={base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b'=').decode()},{len(v)}\n"
        for k, v in files.items()) + f"{name}-0.1.dist-info/RECORD,,\n"
    path = dest / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for k, v in files.items():
            zf.writestr(k, v)
        zf.writestr(f"{name}-0.1.dist-info/RECORD", record)
    return path


def test_environment_pip_packages_and_setup_command(dx, tmp_path, workspace):
    wheel = _wheel(tmp_path, "bfdemo", b"VALUE = 42\n")  # local wheel: no network needed
    src = tmp_path / "src"
    src.mkdir()
    (src / "marker.txt").write_text("from-source\n")
    spec = EnvironmentSpec(
        name=f"test-{uuid.uuid4().hex[:8]}",
        pip_packages=(str(wheel),),
        setup_command="python -c 'import bfdemo' && mkdir -p /opt/demo && cp marker.txt /opt/demo/",
    )
    tag = dx.ensure_environment(spec, src)
    try:
        dx.last_build_s.pop(spec.key, None)
        assert dx.ensure_environment(spec, src) == tag  # cached by spec.key
        assert spec.key not in dx.last_build_s  # found, not rebuilt
        res = dx.run(["sh", "-c", "python -c 'import bfdemo; print(bfdemo.VALUE)'; cat /opt/demo/marker.txt"],
                     workspace, environment=tag)
        assert res.ok, res
        assert res.stdout.split() == ["42", "from-source"]
        assert not (src / "__pycache__").exists()  # setup ran on a copy
    finally:
        dx.close_warm()  # the warm container holds the image
        dx.client.images.remove(tag, force=True)
    assert not _our_containers(dx)


# ---------------------------------------------------------------------------- runs
def test_python_pass_timing(dx, workspace):
    t0 = time.monotonic()
    res = dx.run(["python", "-c", "pass"], workspace)
    wall = time.monotonic() - t0
    assert res.ok and res.backend == "docker", res
    print(f"\npython -c pass: {wall:.2f}s wall (in-container {res.duration_s:.2f}s)")  # the figure: bench/


def test_python_is_the_image_interpreter_and_env_is_passed(dx, workspace):
    res = dx.run(["sh", "-c", "command -v python; python -c 'import sys, pytest; print(sys.executable, pytest.__version__)'; "
                  "echo $FOO"], workspace, env={"FOO": "bar"})
    assert res.ok, res
    lines = res.stdout.split("\n")
    assert lines[0].startswith("/usr/bin/python")
    assert lines[1].startswith("/usr/bin/python") and lines[1].endswith(" " + pytest.__version__)
    assert lines[2] == "bar"


def _write_tests(ws: Path, failing: bool) -> None:
    (ws / "test_sample.py").write_text(
        "def add(a, b):\n    return a + b\n\n"
        "def test_add():\n    assert add(2, 2) == 4\n\n"
        + ("def test_broken():\n    assert add(2, 2) == 5\n" if failing else "")
    )


@pytest.mark.parametrize("failing", [False, True], ids=["passing", "failing"])
def test_pytest_inside_with_junit(dx, workspace, failing):
    _write_tests(workspace, failing)
    owner = workspace.stat().st_uid
    res = dx.run(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=report.xml"],
                 workspace, limits=Limits(timeout_s=60))
    assert not res.timed_out and res.killed_by is None, res
    assert res.exit_code == (1 if failing else 0), res
    report = workspace / "report.xml"
    assert report.exists(), res
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert int(suite.get("tests")) == (2 if failing else 1)
    assert int(suite.get("failures")) == (1 if failing else 0)
    assert report.stat().st_uid == owner  # ownership handed back to the workspace's owner
    assert ("1 failed" in res.stdout) is failing


def test_no_network(dx, workspace):
    # a listener of our own on the host's loopback, plus Redis when it runs on this host
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    ports = [server.getsockname()[1]]
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex(("127.0.0.1", 6379)) == 0:
            ports.append(6379)
    try:
        code = (
            "import socket, sys\n"
            f"for port in {ports!r}:\n"
            "    try:\n"
            "        socket.create_connection(('127.0.0.1', port), timeout=3)\n"
            "        print('CONNECTED', port)\n"
            "    except OSError as exc:\n"
            "        print('refused', port, exc)\n"
            "try:\n"
            "    socket.create_connection(('1.1.1.1', 53), timeout=3); print('CONNECTED outside')\n"
            "except OSError as exc:\n"
            "    print('no route', exc)\n"
        )
        res = dx.run(["python", "-c", code], workspace, limits=Limits(timeout_s=30))
    finally:
        server.close()
    assert res.exit_code == 0, res
    assert "CONNECTED" not in res.stdout, res.stdout
    assert sum(line.startswith("refused ") for line in res.stdout.splitlines()) == len(ports)


def test_non_root_read_only_root_and_tmpfs(dx, workspace):
    script = (
        "id -u; id -g; "
        "touch /usr/x 2>/dev/null && echo WROTE-USR; "
        "touch /etc/x 2>/dev/null && echo WROTE-ETC; "
        "echo ok > /tmp/t && cat /tmp/t; "
        "echo ws > /workspace/out.txt && echo wrote-ws; "
        "ls /root 2>/dev/null && echo READ-ROOT; "
        "cat /proc/self/status | grep CapEff"
    )
    res = dx.run(["sh", "-c", script], workspace)
    lines = res.stdout.splitlines()
    assert lines[:2] == ["65534", "65534"], res
    assert "WROTE-USR" not in res.stdout and "WROTE-ETC" not in res.stdout
    assert "READ-ROOT" not in res.stdout
    assert "ok" in lines and "wrote-ws" in lines
    assert "CapEff:\t0000000000000000" in res.stdout
    assert (workspace / "out.txt").read_text() == "ws\n"


def test_memory_limit_one_process(dx, workspace):
    # a single process runs into RLIMIT_DATA (= the memory limit) first: MemoryError
    res = dx.run(["python", "-c", "x = []\nwhile True:\n    x.append(b'x' * 10_000_000)"],
                 workspace, limits=Limits(memory_mb=128, timeout_s=60))
    assert res.exit_code in (1, 137), res
    assert res.killed_by == KILLED_MEMORY and not res.timed_out, res


def test_memory_limit_cgroup_oom_kills(dx, workspace):
    # three processes of 80 MB each, every one below RLIMIT_DATA: the cgroup OOM killer fires
    code = (
        "import subprocess, sys\n"
        "hog = \"x = b'x' * (80 << 20)\\nimport time\\ntime.sleep(10)\"\n"
        "ps = [subprocess.Popen([sys.executable, '-c', hog]) for _ in range(3)]\n"
        "codes = [p.wait() for p in ps]\n"
        "print(codes)\n"
        "sys.exit(137 if -9 in codes else 0)\n"
    )
    res = dx.run(["python", "-c", code], workspace, limits=Limits(memory_mb=128, timeout_s=60))
    assert res.exit_code == 137, res
    assert res.killed_by == KILLED_MEMORY and not res.timed_out, res


def test_timeout_kills_and_container_is_gone(dx, workspace):
    res = dx.run(["sh", "-c", "echo started; sleep 120"], workspace, limits=Limits(timeout_s=2))
    assert res.timed_out and res.killed_by == KILLED_TIMEOUT, res
    assert not res.ok
    assert "started" in res.stdout
    assert not _left_behind(dx)


def test_setsid_grandchild_does_not_hang_or_survive(dx, workspace):
    marker = f"{uuid.uuid4().int % 1000 + 300}.25"
    code = ("import subprocess\n"
            f"subprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n"
            "print('parent done')\n")
    res = dx.run(["python", "-c", code], workspace, limits=Limits(timeout_s=30))
    assert not res.timed_out, res  # the run ends with its parent, not when the grandchild does
    assert res.exit_code == 0 and "parent done" in res.stdout, res
    time.sleep(0.5)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            assert cmd[:2] != [b"sleep", marker.encode()], f"grandchild survived as pid {proc.name}"
    assert not _left_behind(dx)


def test_output_truncation_is_bounded(dx, workspace):
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code = ("import sys\nblock = b'x' * (1 << 20)\n"
            "for _ in range(1024):\n    sys.stdout.buffer.write(block)\n"   # 1 GiB
            "sys.stderr.write('e' * 5000)\n")
    res = dx.run(["python", "-c", code], workspace, limits=Limits(output_bytes=1000, timeout_s=120))
    assert res.exit_code == 0, res.stderr[-500:]
    assert res.stdout_truncated and res.stderr_truncated
    assert res.stdout == "x" * 1000 + TRUNCATION_MARKER
    assert res.stderr == "e" * 1000 + TRUNCATION_MARKER
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 100, f"worker memory grew by {grown_mb:.0f} MB"


def test_small_output_untouched(dx, workspace):
    res = dx.run(["python", "-c", "import sys; print('a' * 10); print('b', file=sys.stderr)"], workspace,
                 limits=Limits(output_bytes=100))
    assert res.stdout == "a" * 10 + "\n" and res.stderr == "b\n"
    assert not res.stdout_truncated and not res.stderr_truncated


def test_fork_bomb_is_contained(dx, workspace):
    res = dx.run(["sh", "-c", "f() { f | f & }; f; sleep 3"], workspace, limits=Limits(pids=64, timeout_s=10))
    assert res.exit_code is not None or res.timed_out
    assert not _left_behind(dx)


# ---------------------------------------------------------------------------- warm containers
def test_warm_container_is_reused_and_runs_stay_apart(dx, tmp_path):
    root = tmp_path / "workspaces"
    root.mkdir()
    first, second = root / "ws-1", root / "ws-2"
    first.mkdir()
    second.mkdir()
    (first / "secret.txt").write_text("first-run-only\n")
    leave = ("echo left > /tmp/left-by-first; echo left > /dev/shm/left; "
             "sleep 1000 > /dev/null 2>&1 &  echo started")
    res = dx.run(["sh", "-c", leave], first, limits=Limits(timeout_s=30))
    assert res.ok and "started" in res.stdout, res
    assert not _left_behind(dx)  # the background sleep died with the run's pid namespace
    idle_before = set(_idle_warm(dx))
    probe = (
        "test -e /tmp/left-by-first && echo TMP-LEAK; test -e /dev/shm/left && echo SHM-LEAK; "
        "ls -a /run /; ls -a /workspace; find / -name secret.txt 2>/dev/null; "
        "grep -E 'CapBnd|CapEff|NoNewPrivs' /proc/self/status; id -u"
    )
    res = dx.run(["sh", "-c", probe], second, limits=Limits(timeout_s=30))
    assert res.exit_code == 0, res
    assert set(_idle_warm(dx)) == idle_before  # the same container served both runs
    out = res.stdout
    assert "LEAK" not in out and "secret.txt" not in out and "ws-1" not in out, out
    assert "ctl.sock" not in out and "supervisor" not in out, out
    assert "CapBnd:\t0000000000000000" in out and "CapEff:\t0000000000000000" in out
    assert "NoNewPrivs:\t1" in out
    assert out.strip().splitlines()[-1] == "65534"


def test_warm_container_is_replaced_after_a_timeout(dx, workspace):
    limits = Limits(timeout_s=1)
    res = dx.run(["python", "-c", "print('warm')"], workspace, limits=limits)
    assert res.ok
    mine = lambda: {i for i, w in _idle_warm(dx).items() if w.key[1] == str(workspace.parent)}  # noqa: E731
    used = mine()
    assert len(used) == 1
    res = dx.run(["sh", "-c", "sleep 60"], workspace, limits=limits)
    assert res.timed_out
    assert not mine()  # discarded, not handed to the next run
    assert not _left_behind(dx)
    assert dx.run(["python", "-c", "print('again')"], workspace).stdout == "again\n"


def test_workspaces_root_replaced_under_a_warm_container(dx, tmp_path):
    import shutil

    root = tmp_path / "root"
    (root / "ws").mkdir(parents=True)
    assert dx.run(["python", "-c", "print(1)"], root / "ws").stdout == "1\n"
    shutil.rmtree(root)  # the warm container still mounts the old directory
    (root / "ws").mkdir(parents=True)
    res = dx.run(["sh", "-c", "echo 2 > out.txt; cat out.txt"], root / "ws")
    assert res.ok and res.stdout == "2\n", res
    assert (root / "ws" / "out.txt").read_text() == "2\n"


def test_two_executors_at_once(dx, tmp_path):
    """Two workers on the same engine: each has its own warm containers, both runs succeed."""
    import threading

    other = DockerExecutor(dx.base_url, CACHE_DIR, labels={SESSION_LABEL: SESSION_ID})
    dirs = [tmp_path / "a", tmp_path / "b"]
    results = {}

    def go(ex, d):
        d.mkdir()
        results[d.name] = ex.run(["python", "-c", "import time; time.sleep(1); print('done')"], d,
                                 limits=Limits(timeout_s=60))

    threads = [threading.Thread(target=go, args=a) for a in ((dx, dirs[0]), (other, dirs[1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert all(r.ok and r.stdout == "done\n" for r in results.values()), results
    finally:
        other.close()


def test_cold_path_one_container_per_run(dx, workspace):
    cold = DockerExecutor(dx.base_url, CACHE_DIR, labels={SESSION_LABEL: SESSION_ID}, warm=False)
    res = cold.run(["python", "-c", "print('cold')"], workspace)
    assert res.ok and res.stdout == "cold\n", res
    res = cold.run(["sh", "-c", "sleep 60"], workspace, limits=Limits(timeout_s=1))
    assert res.timed_out and res.killed_by == KILLED_TIMEOUT
    assert not _left_behind(dx)


def test_no_container_left_behind(dx):
    assert not _left_behind(dx)
    dx.close_warm()
    assert not _our_containers(dx), [c.name for c in _our_containers(dx)]
