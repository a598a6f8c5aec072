"""Containment: hostile workloads are stopped, recorded with the right kind, and leave the
host (and the executor) healthy. Parametrized over every backend via the ``executor``
fixture; a backend that is not available here is skipped loudly, never silently passed."""
from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from episodes.engine.sandbox import (
    KILLED_MEMORY,
    KILLED_PIDS,
    KILLED_TIMEOUT,
    TRUNCATION_MARKER,
    ExecResult,
)

from .conftest import FAST, REPO_ROOT



def run_py(executor, workdir, code, limits=FAST, **kw) -> ExecResult:
    return executor.run(["python", "-c", code], workdir, limits=limits, **kw)


def assert_healthy(executor, workdir):
    """A normal run still works after the hostile one, in the same executor."""
    r = run_py(executor, workdir, "print('ok')", limits=replace(FAST, timeout_s=30))
    assert r.exit_code == 0, r
    assert r.stdout.strip() == "ok"
    assert r.ok and not r.timed_out and r.killed_by is None


def host_processes(pattern: str) -> list[str]:
    p = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    return [ln for ln in p.stdout.splitlines() if ln.strip() and "pgrep" not in ln]


def wait_no_host_processes(pattern: str, within_s: float = 3.0) -> list[str]:
    end = time.monotonic() + within_s
    while True:
        left = host_processes(pattern)
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.1)


def port_listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------- processes
def test_fork_bomb_naive_is_contained(executor, workdir):
    tag = f"forkbomb-{uuid.uuid4().hex[:8]}"
    code = f"# {tag}\nimport os\nwhile True:\n    os.fork()\n"
    r = run_py(executor, workdir, code)
    assert not r.ok
    assert r.exit_code != 0 or r.timed_out
    assert r.killed_by in (KILLED_PIDS, KILLED_TIMEOUT, None), r.killed_by
    if not r.timed_out and executor.name == "local":
        assert r.killed_by == KILLED_PIDS, r  # the local backend detects NPROC / pids.max
    assert wait_no_host_processes(tag) == []
    assert_healthy(executor, workdir)


def test_fork_bomb_persistent_is_killed_at_timeout(executor, workdir):
    """Every process swallows the fork error and keeps forking: only the sandbox can end it."""
    tag = f"forkbomb-{uuid.uuid4().hex[:8]}"
    code = (
        f"# {tag}\nimport os, time\n"
        "while True:\n"
        "    try:\n        os.fork()\n"
        "    except OSError:\n        time.sleep(0.01)\n"
    )
    limits = replace(FAST, timeout_s=3)
    r = run_py(executor, workdir, code, limits=limits)
    assert not r.ok
    # the local backend counts the process tree at the deadline: a fork bomb is the pids limit
    # (the Docker backend does not tell them apart yet)
    assert r.timed_out and r.killed_by == (KILLED_PIDS if executor.name == "local" else KILLED_TIMEOUT), r
    assert r.exit_code is None or r.exit_code != 0
    assert wait_no_host_processes(tag) == []
    assert_healthy(executor, workdir)


def test_memory_hog_is_stopped(executor, workdir):
    limits = replace(FAST, memory_mb=256)
    r = run_py(executor, workdir, "x = bytearray(4 * 1024 ** 3)\nprint('allocated')", limits)
    assert "allocated" not in r.stdout
    assert not r.ok
    assert r.killed_by == KILLED_MEMORY or "MemoryError" in r.stderr, r
    if executor.name == "local":
        assert r.killed_by == KILLED_MEMORY and r.exit_code == 1
    assert_healthy(executor, workdir)


def test_memory_hog_touching_pages_is_stopped(executor, workdir):
    """Grows in 16 MB steps and touches every page (RSS, not just address space)."""
    code = (
        "chunks = []\n"
        "for i in range(256):\n"
        "    b = bytearray(16 * 1024 * 1024)\n"
        "    b[::4096] = b'x' * len(b[::4096])\n"
        "    chunks.append(b)\n"
        "print('allocated 4 GB')\n"
    )
    r = run_py(executor, workdir, code, replace(FAST, memory_mb=256, timeout_s=20))
    assert "allocated 4 GB" not in r.stdout
    assert not r.ok
    assert r.killed_by == KILLED_MEMORY or "MemoryError" in r.stderr, r
    assert_healthy(executor, workdir)


def test_infinite_loop_times_out(executor, workdir):
    limits = replace(FAST, timeout_s=3)
    r = run_py(executor, workdir, "while True:\n    pass\n", limits)
    assert r.timed_out is True
    assert r.killed_by == KILLED_TIMEOUT
    assert not r.ok
    assert_healthy(executor, workdir)


def test_infinite_loop_with_output_times_out(executor, workdir):
    """Output keeps flowing while the clock runs out: the timeout must still fire."""
    limits = replace(FAST, timeout_s=3)
    r = run_py(executor, workdir, "while True:\n    print('spam' * 100)\n", limits)
    assert r.timed_out is True and r.killed_by == KILLED_TIMEOUT
    assert r.stdout_truncated and r.stdout.endswith(TRUNCATION_MARKER)
    assert_healthy(executor, workdir)


def test_setsid_grandchild_holding_stdout_is_killed(executor, workdir):
    secs = 900000 + int(uuid.uuid4().int % 90000)  # unique argv to look for on the host
    code = (
        "import subprocess\n"
        f"subprocess.Popen(['sleep', '{secs}'], start_new_session=True)\n"
        "print('parent done', flush=True)\n"
    )
    limits = replace(FAST, timeout_s=5)
    r = run_py(executor, workdir, code, limits)
    assert "parent done" in r.stdout
    if not r.timed_out:
        assert r.exit_code == 0, r
    else:
        assert r.killed_by == KILLED_TIMEOUT
    if executor.name == "local":
        assert not r.timed_out, r  # ends with its parent, not at the timeout
    assert wait_no_host_processes(f"sleep {secs}") == [], "a setsid() grandchild survived"
    assert_healthy(executor, workdir)


def test_double_fork_daemon_is_killed(executor, workdir):
    """Classic daemonisation (fork, setsid, fork, close nothing) outlives its parent."""
    secs = 800000 + int(uuid.uuid4().int % 90000)
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execvp('sleep', ['sleep', '{secs}'])\n"
        "    os._exit(0)\n"
        "time.sleep(0.2)\n"
        "print('parent done')\n"
    )
    r = run_py(executor, workdir, code)
    assert "parent done" in r.stdout
    assert wait_no_host_processes(f"sleep {secs}") == []
    assert_healthy(executor, workdir)


# ---------------------------------------------------------------------------- output
def test_one_gigabyte_stdout_flood_is_truncated_with_bounded_memory(executor, workdir):
    code = (
        "import sys\n"
        "chunk = b'x' * (1 << 20)\n"
        "for _ in range(1024):\n"
        "    sys.stdout.buffer.write(chunk)\n"
        "sys.stdout.flush()\n"
        "sys.stderr.write('flood done\\n')\n"
    )
    limits = replace(FAST, timeout_s=60, output_bytes=100_000)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    r = run_py(executor, workdir, code, limits)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert r.stdout_truncated is True
    assert r.stdout.endswith(TRUNCATION_MARKER)
    assert r.stdout.startswith("x" * 1000)
    assert len(r.stdout) <= limits.output_bytes + len(TRUNCATION_MARKER)
    assert not r.stderr_truncated
    if not r.timed_out:  # the pipe was drained to the end, the writer was never blocked
        assert r.exit_code == 0, r.stderr[-2000:]
        assert "flood done" in r.stderr
    assert (rss_after - rss_before) < 200 * 1024, "capturing the flood grew the host process"
    assert_healthy(executor, workdir)


def test_stderr_flood_with_yes_is_truncated(executor, workdir):
    limits = replace(FAST, timeout_s=3, output_bytes=50_000)
    r = executor.run(["sh", "-c", "yes 1>&2"], workdir, limits=limits)
    assert r.stderr_truncated and r.stderr.endswith(TRUNCATION_MARKER)
    assert len(r.stderr) <= limits.output_bytes + len(TRUNCATION_MARKER)
    assert r.timed_out and r.killed_by == KILLED_TIMEOUT
    assert_healthy(executor, workdir)


# ---------------------------------------------------------------------------- network
def test_network_is_unreachable(executor, workdir):
    ports = [p for p in (6379, 5432) if port_listening(p)]
    if not ports:
        pytest.skip("neither Redis (6379) nor PostgreSQL (5432) listens on this host")
    code = (
        "import json, socket\n"
        "out = {}\n"
        f"for port in {ports!r}:\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', port), timeout=2).close()\n"
        "        out[port] = 'connected'\n"
        "    except OSError as e:\n"
        "        out[port] = type(e).__name__\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=2).close()\n"
        "    out['internet'] = 'connected'\n"
        "except OSError as e:\n"
        "    out['internet'] = type(e).__name__\n"
        "print(json.dumps(out))\n"
    )
    r = run_py(executor, workdir, code)
    assert r.exit_code == 0, r
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for port in ports:
        assert out[str(port)] != "connected", f"sandbox reached 127.0.0.1:{port}"
    assert out["internet"] != "connected"
    assert_healthy(executor, workdir)


# ---------------------------------------------------------------------------- filesystem
@pytest.fixture
def outside_targets(sandbox_base, workdir):
    """Host paths the sandbox must not create; cleaned up if a test ever fails."""
    tag = uuid.uuid4().hex[:8]
    sibling = sandbox_base / f"sibling-{tag}"
    sibling.mkdir()
    os.chmod(sibling, 0o777)  # writable by anyone on the host: only the mount set protects it
    targets = [
        Path(f"/etc/bugforge-escape-{tag}"),
        Path(f"/usr/bugforge-escape-{tag}"),
        Path(f"/usr/local/bugforge-escape-{tag}"),
        REPO_ROOT / f"bugforge-escape-{tag}",
        REPO_ROOT / "var" / f"bugforge-escape-{tag}",
        Path(f"/root/bugforge-escape-{tag}"),
        Path(f"/var/tmp/bugforge-escape-{tag}"),
        sibling / "escape",
        workdir.parent / f"bugforge-escape-{tag}",
    ]
    yield targets
    for t in targets:
        try:
            t.unlink()
        except OSError:
            pass
    sibling.rmdir() if not any(sibling.iterdir()) else None


def test_writes_outside_workspace_fail(executor, workdir, outside_targets):
    code = (
        "import json, sys\n"
        "res = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        with open(p, 'w') as f:\n"
        "            f.write('escaped')\n"
        "        res[p] = 'written'\n"
        "    except OSError as e:\n"
        "        res[p] = type(e).__name__\n"
        "with open('inside.txt', 'w') as f:\n"
        "    f.write('fine')\n"
        "print(json.dumps(res))\n"
    )
    r = executor.run(["python", "-c", code, *map(str, outside_targets)], workdir, limits=FAST)
    assert r.exit_code == 0, r
    res = json.loads(r.stdout.strip().splitlines()[-1])
    written = [p for p, v in res.items() if v == "written"]
    # A write that "succeeds" into a throwaway in-sandbox tmpfs is harmless; a host file is not.
    for t in outside_targets:
        assert not t.exists(), f"sandbox created {t} on the host"
    if executor.name == "local":
        assert written == [], written  # the local root is read-only apart from the workdir
    assert (workdir / "inside.txt").read_text() == "fine"
    assert_healthy(executor, workdir)


@pytest.fixture
def host_secret():
    """A world-readable secret in the project's var/: only the mount set can hide it."""
    var = REPO_ROOT / "var"
    created_var = not var.exists()
    var.mkdir(exist_ok=True)
    secret = var / f".sandbox-test-secret-{uuid.uuid4().hex[:8]}.env"
    secret.write_text("SECRET_KEY=do-not-leak-7f3a\n")
    os.chmod(secret, 0o644)
    yield secret
    secret.unlink(missing_ok=True)
    if created_var:
        try:
            var.rmdir()
        except OSError:
            pass


def test_host_secrets_are_invisible(executor, workdir, host_secret):
    paths = ["/root", str(REPO_ROOT), str(REPO_ROOT / "var"), str(host_secret),
             str(REPO_ROOT / ".env"), "/root/.ssh", "/etc/shadow", "/etc/passwd"]
    code = (
        "import json, os, sys\n"
        "res = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        if os.path.isdir(p):\n"
        "            res[p] = ['dir', sorted(os.listdir(p))]\n"
        "        else:\n"
        "            res[p] = ['file', open(p).read()]\n"
        "    except OSError as e:\n"
        "        res[p] = ['error', type(e).__name__]\n"
        "procs = [d for d in os.listdir('/proc') if d.isdigit()]\n"
        "res['/proc'] = ['pids', len(procs)]\n"
        "env = '\\n'.join(f'{k}={v}' for k, v in os.environ.items())\n"
        "res['environ'] = ['env', env]\n"
        "print(json.dumps(res))\n"
    )
    r = executor.run(["python", "-c", code, *paths], workdir, limits=FAST)
    assert r.exit_code == 0, r
    assert "do-not-leak-7f3a" not in r.stdout
    res = json.loads(r.stdout.strip().splitlines()[-1])
    for p in ("/root", str(REPO_ROOT), str(REPO_ROOT / "var"), "/root/.ssh"):
        kind, value = res[p]
        assert kind == "error" or value == [], f"{p} is visible in the sandbox: {value}"
    for p in (str(host_secret), str(REPO_ROOT / ".env"), "/etc/shadow"):
        assert res[p][0] == "error", f"{p} readable in the sandbox: {res[p]}"
    if res["/etc/passwd"][0] == "file":
        assert "root:x:0:0" not in res["/etc/passwd"][1] or len(
            res["/etc/passwd"][1].splitlines()) <= 5, "the host's full /etc/passwd is exposed"
    # Host environment (e.g. DATABASE_URL, SECRET_KEY, DJANGO_*) must not leak in.
    leaked = [k for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "SECRET_KEY", "PYENV_ROOT")
              if k in os.environ and f"{k}=" in res["environ"][1]]
    assert leaked == []
    if executor.name == "local":
        assert res["/proc"][1] < 10, "host processes are visible"
    assert_healthy(executor, workdir)


def test_file_size_limit(executor, workdir):
    limits = replace(FAST, file_size_mb=2)
    code = (
        "f = open('big.bin', 'wb')\n"
        "for _ in range(10):\n"
        "    f.write(b'x' * (1 << 20))\n"
        "    f.flush()\n"
        "print('wrote 10 MB')\n"
    )
    r = run_py(executor, workdir, code, limits)
    assert "wrote 10 MB" not in r.stdout
    assert not r.ok
    assert r.killed_by == "file_size" or "File too large" in r.stderr, r
    assert (workdir / "big.bin").stat().st_size <= 2 * 1024 * 1024
    assert_healthy(executor, workdir)


def test_cpu_limit(executor, workdir):
    limits = replace(FAST, cpu_seconds=1, timeout_s=20)
    r = run_py(executor, workdir, "while True:\n    pass\n", limits)
    assert not r.ok
    assert r.killed_by in ("cpu", KILLED_TIMEOUT), r
    if executor.name == "local":
        assert r.killed_by == "cpu" and not r.timed_out
    assert_healthy(executor, workdir)


def test_result_records_backend_and_normal_run(executor, workdir):
    (workdir / "data.txt").write_text("from the host\n")
    os.chmod(workdir / "data.txt", 0o600)  # root-owned 0600: must still be usable inside
    r = executor.run(["python", "-c", "import os; print(open('data.txt').read().strip()); "
                      "open('out.txt', 'w').write(str(os.getuid()))"], workdir, limits=FAST)
    assert r.exit_code == 0, r
    assert r.stdout.strip() == "from the host"
    assert r.backend == executor.name
    assert r.to_dict()["backend"] == executor.name
    assert (workdir / "out.txt").read_text() != "0", "sandboxed code ran as root"
