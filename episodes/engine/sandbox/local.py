"""Local sandbox backend: bubblewrap namespaces + rlimits + an unprivileged uid (no Django).

Every run is wrapped as (see ``build_command``)::

    bwrap --unshare-all --unshare-user --json-status-fd FD --die-with-parent --new-session
          --disable-userns --cap-drop ALL --hostname bugforge-sandbox
          --ro-bind /usr /usr  --symlink usr/bin /bin  --symlink usr/lib /lib  (etc. for /sbin, /lib64)
          --ro-bind /etc/{ld.so.cache,ld.so.conf,ld.so.conf.d,localtime,nsswitch.conf,ssl,...}
          --ro-bind-data FD /etc/passwd  --ro-bind-data FD /etc/group  --ro-bind-data FD /etc/hosts
          --symlink /usr/bin/python3 /.bugforge/bin/python
          --proc /proc  --dev /dev  --size 256MiB --tmpfs /tmp  --dir /var/tmp
          [--ro-bind ENVDIR ENVDIR]  [--ro-bind/--bind MOUNT ...]  --bind WORKDIR WORKDIR  --remount-ro /
          --chdir WORKDIR  -- argv...

started from a ``preexec_fn`` that (as root) joins a per-run pids cgroup when the v1 pids
controller is writable, sets RLIMIT_AS / CPU / FSIZE / NPROC / CORE, drops supplementary
groups and switches to ``run_as_uid`` (65534 by default). bwrap then runs unprivileged,
creating a user namespace (uid 65534 inside too), so RLIMIT_NPROC is enforced (it is ignored
for uid 0, even in a user namespace). The pid namespace plus ``--die-with-parent`` means
killing the outer bwrap process kills everything in the sandbox, including ``setsid()``
grandchildren that hold the output pipes; bwrap's pid-1 also exits (tearing down the
namespace) as soon as the command itself exits.

Not isolated here: disk use in the workdir (only per-file size via RLIMIT_FSIZE), total memory
across processes (RLIMIT_AS is per process; no memory cgroup is used: on these hosts this
process already sits in a memory cgroup owned by its supervisor, which we leave alone), and RLIMIT_NPROC is counted per uid
host-wide, so when no pids cgroup is available concurrent runs under the same uid share it.
"""
from __future__ import annotations

import json
import os
import re
import resource
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from episodes.engine.locks import file_lock
from episodes.engine.sandbox import artifacts
from episodes.engine.sandbox.base import (
    KILLED_CPU,
    KILLED_FILE_SIZE,
    KILLED_MEMORY,
    KILLED_PIDS,
    KILLED_TIMEOUT,
    TRUNCATION_MARKER,
    EnvironmentSpec,
    ExecResult,
    Limits,
    Mount,
    ProbeReport,
    SandboxError,
)

SYSTEM_PYTHON = "/usr/bin/python3"
DEFAULT_PYTEST = "pytest==9.2.0"
ENV_MARKER = ".bugforge-env.json"
PIDS_CGROUP_ROOT = Path("/sys/fs/cgroup/pids")
CGROUP_PARENT = "bugforge-sandbox"
TMPFS_BYTES = 256 * 1024 * 1024
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
SHIM_BIN = "/.bugforge/bin"  # inside the sandbox only: `python` -> /usr/bin/python3

# /etc entries the interpreter and common tools read; bound read-only when present.
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "nsswitch.conf",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "mime.types",
    "alternatives",
)
NETWORK_ETC_FILES = ("resolv.conf", "host.conf", "gai.conf", "services", "protocols")


def _which_bwrap() -> str | None:
    return shutil.which("bwrap") or (
        "/usr/bin/bwrap" if os.path.exists("/usr/bin/bwrap") else None
    )


class _PidsCgroup:
    """A per-run cgroup-v1 pids group (optional: only when the controller is writable)."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def create(cls, max_pids: int) -> "_PidsCgroup | None":
        if os.geteuid() != 0:
            return None
        parent = PIDS_CGROUP_ROOT / CGROUP_PARENT
        try:
            if not (PIDS_CGROUP_ROOT / "cgroup.procs").exists():
                return None
            parent.mkdir(exist_ok=True)
            path = parent / uuid.uuid4().hex[:16]
            path.mkdir()
            (path / "pids.max").write_text(str(max_pids))
            return cls(path)
        except OSError:
            return None

    @property
    def procs_file(self) -> str:
        return str(self.path / "cgroup.procs")

    def hit_max(self) -> bool:
        try:
            text = (self.path / "pids.events").read_text()
        except OSError:
            return False
        m = re.search(r"max\s+(\d+)", text)
        return bool(m and int(m.group(1)) > 0)

    def remove(self) -> None:
        delay = 0.0005  # tasks usually leave within a millisecond: back off from there
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                # Tasks still exiting: kill stragglers (there should be none) and retry.
                try:
                    for pid in (self.path / "cgroup.procs").read_text().split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except (ProcessLookupError, ValueError):
                            pass
                except OSError:
                    pass
                time.sleep(delay)
                delay = min(delay * 2, 0.05)


class _Capture:
    """Keeps the first ``cap`` bytes of a stream and counts (then drops) the rest."""

    def __init__(self, cap: int):
        self.cap = cap
        self.chunks: list[bytes] = []
        self.kept = 0
        self.truncated = False

    def feed(self, data: bytes) -> None:
        room = self.cap - self.kept
        if room > 0:
            part = data[:room]
            self.chunks.append(part)
            self.kept += len(part)
        if len(data) > max(room, 0):
            self.truncated = True

    def text(self) -> str:
        out = b"".join(self.chunks).decode("utf-8", errors="replace")
        return out + TRUNCATION_MARKER if self.truncated else out


class LocalExecutor:
    """Runs commands under bubblewrap as an unprivileged uid (see module docstring)."""

    name = "local"

    def __init__(self, cache_dir: Path, run_as_uid: int = 65534, run_as_gid: int | None = None,
                 use_cgroups: bool = True):
        self.cache_dir = Path(cache_dir)
        self.run_as_uid = run_as_uid
        self.run_as_gid = run_as_uid if run_as_gid is None else run_as_gid
        self.use_cgroups = use_cgroups
        self.bwrap = _which_bwrap()

    # ------------------------------------------------------------------ environments
    @property
    def envs_dir(self) -> Path:
        return self.cache_dir / "envs"

    def environment_path(self, environment: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", environment or ""):
            raise SandboxError(f"invalid environment id {environment!r}")
        return self.envs_dir / environment

    def ensure_environment(self, spec: EnvironmentSpec, source_dir: Path) -> str:
        """Build ``cache_dir/envs/<spec.key>`` once (venv from /usr/bin/python3 + pytest +
        ``spec.pip_packages``, then ``spec.setup_command``) and return ``spec.key``.

        The venv is built in a temporary directory next to the final one and renamed into
        place under an exclusive ``flock``, so concurrent workers build it once and readers
        never see a half-built environment (the marker file is written before the rename).

        ``pip install`` runs on the host as the calling user, outside the network namespace:
        it needs PyPI (or the host's configured indexes / find-links), and the packages are
        named by the spec, not by the untrusted repository. ``setup_command`` is repository
        controlled, so it runs inside the sandbox as ``run_as_uid`` with the network shared
        (downloads), the venv writable and a throwaway copy of ``source_dir`` as its working
        directory. The repository's own code always comes from the run's workspace (the
        checkout is never installed into the environment); what the step builds in the copy
        (an extension's .so, a generated module) is kept under ``<env>/bugforge-artifacts`` and
        served to workspace packages by a finder (see artifacts.py); the marker lists it.
        """
        key = spec.key
        final = self.environment_path(key)
        if (final / ENV_MARKER).is_file():
            return key
        self.envs_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.envs_dir, 0o755)
        lock_path = self.envs_dir / f".{key}.lock"
        with file_lock(lock_path):
            if (final / ENV_MARKER).is_file():
                return key
            if final.exists():  # leftover of an interrupted build without marker
                shutil.rmtree(final, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=self.envs_dir))
            try:
                built = self._build_venv(spec, tmp, Path(source_dir))
                self._relocate_scripts(tmp, final)
                (tmp / ENV_MARKER).write_text(json.dumps({
                    "key": key, "spec": spec.name, "pip_packages": list(spec.pip_packages),
                    "setup_command": spec.setup_command, "source_tree": spec.source_tree,
                    "artifacts": built, "built_at": time.time(),
                }))
                _chown_tree(tmp, 0, 0)
                _chmod_readable(tmp)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return key

    def _build_venv(self, spec: EnvironmentSpec, tmp: Path, source_dir: Path) -> list[str]:
        """Build the venv in ``tmp``; return the build outputs kept (see artifacts.py)."""
        python = SYSTEM_PYTHON if spec.python in ("python3", "python", "", SYSTEM_PYTHON) \
            else spec.python
        if not os.path.exists(python):
            raise SandboxError(f"interpreter {python!r} for environment {spec.name!r} not found")
        os.chmod(tmp, 0o755)
        _check(
            [python, "-m", "venv", str(tmp)], "creating the venv", timeout=300,
        )
        packages = list(spec.pip_packages)
        if not any(re.match(r"pytest\s*($|[<>=!~\[;])", p.strip(), re.I) for p in packages):
            packages.insert(0, DEFAULT_PYTEST)
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        _check(
            [str(tmp / "bin" / "python"), "-m", "pip", "install", "--no-input", *packages],
            "installing packages", env=env, timeout=1800,
        )
        if not spec.setup_command:
            return []
        scratch = Path(tempfile.mkdtemp(prefix="bugforge-setup-", dir="/var/tmp"))
        try:
            os.chmod(scratch, 0o755)
            work = scratch / "src"
            if source_dir.is_dir():
                shutil.copytree(source_dir, work, symlinks=True)
            else:
                work.mkdir()
            # the copy keeps the checkout's owner and modes (a worktree is a 0700 root
            # dir): the sandbox uid must own and be able to write all of it
            _chown_tree(work, self.run_as_uid, self.run_as_gid, owner_rw=True)
            _chown_tree(tmp, self.run_as_uid, self.run_as_gid)
            res = self._run(
                ["/bin/sh", "-c", spec.setup_command], work, env_dir=tmp, env_writable=True,
                env=None, limits=Limits(timeout_s=1800, memory_mb=4096, pids=512,
                                        file_size_mb=1024, network=True),
            )
            if not res.ok:
                raise SandboxError(
                    f"setup_command for {spec.name!r} failed (exit {res.exit_code}, "
                    f"killed_by={res.killed_by}):\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
                )
            _chown_tree(tmp, 0, 0)
            # what the step built in the copy would go with it: keep it in the environment
            built = artifacts.collect(source_dir, work, tmp / artifacts.FOLDER)
            if built:
                site = next((tmp / "lib").glob("python3*/site-packages"))
                artifacts.install_finder(site, str(self.environment_path(spec.key) / artifacts.FOLDER))
            return built
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    @staticmethod
    def _relocate_scripts(tmp: Path, final: Path) -> None:
        """venv scripts carry the build path in shebangs/activate files: point them at the
        final location (``python -m ...`` does not depend on this)."""
        old, new = str(tmp).encode(), str(final).encode()
        for p in [*(tmp / "bin").iterdir(), tmp / "pyvenv.cfg"]:
            if p.is_symlink() or not p.is_file():
                continue
            data = p.read_bytes()
            if old in data and b"\0" not in data[:4096]:
                p.write_bytes(data.replace(old, new))

    # ------------------------------------------------------------------ running
    def run(
        self,
        argv: list[str],
        workdir: Path,
        *,
        environment: str | None = None,
        env: dict[str, str] | None = None,
        limits: Limits = Limits(),
        mounts: tuple[Mount, ...] | list[Mount] = (),
    ) -> ExecResult:
        if not argv:
            raise SandboxError("empty argv")
        workdir = Path(workdir).resolve()
        if not workdir.is_dir():
            raise SandboxError(f"workdir {workdir} does not exist")
        env_dir = None
        if environment:
            env_dir = self.environment_path(environment)
            if not (env_dir / ENV_MARKER).is_file():
                raise SandboxError(f"environment {environment!r} is not built")
        _chown_tree(workdir, self.run_as_uid, self.run_as_gid)
        self._check_reachable(workdir)
        if env_dir is not None:
            self._check_reachable(env_dir)
        for m in mounts:
            if not Path(m.source).exists():
                raise SandboxError(f"mount source {m.source} does not exist")
            if not str(m.target).startswith("/"):
                raise SandboxError(f"mount target {m.target!r} must be absolute")
            source = Path(m.source)
            self._check_reachable(source if source.is_dir() else source.parent)
        return self._run(list(argv), workdir, env_dir=env_dir, env_writable=False, env=env,
                         limits=limits, mounts=tuple(mounts))

    def _check_reachable(self, path: Path) -> None:
        """bwrap runs as ``run_as_uid``, so every ancestor must be searchable by it."""
        for parent in [path, *path.parents]:
            try:
                st = parent.stat()
            except OSError as e:
                raise SandboxError(f"cannot stat {parent}: {e}") from e
            if st.st_uid == self.run_as_uid:
                ok = st.st_mode & stat.S_IXUSR
            elif st.st_gid == self.run_as_gid:
                ok = st.st_mode & stat.S_IXGRP
            else:
                ok = st.st_mode & stat.S_IXOTH
            if not ok:
                raise SandboxError(
                    f"{parent} is not searchable by uid {self.run_as_uid}; sandbox workdirs and "
                    f"the environment cache must live under directories it can traverse "
                    f"(not /root or a mode-700 temp dir)"
                )

    def build_command(self, argv: list[str], workdir: Path, *, env_dir: Path | None = None,
                      env_writable: bool = False, network: bool = False,
                      data_fds: dict[str, int] | None = None,
                      status_fd: int | None = None, mounts: tuple[Mount, ...] = ()) -> list[str]:
        """The bwrap command line (without the rlimit/uid part, done in preexec_fn)."""
        if not self.bwrap:
            raise SandboxError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
        cmd = [self.bwrap, "--unshare-all", "--unshare-user"]
        if network:
            cmd.append("--share-net")
        if status_fd is not None:
            cmd += ["--json-status-fd", str(status_fd)]
        cmd += ["--die-with-parent", "--new-session", "--disable-userns", "--cap-drop", "ALL",
                "--hostname", "bugforge-sandbox", "--ro-bind", "/usr", "/usr"]
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            p = Path("/") / name
            if p.is_symlink():
                cmd += ["--symlink", os.readlink(p), str(p)]
            elif p.is_dir():
                cmd += ["--ro-bind", str(p), str(p)]
        etc = list(ETC_FILES) + (list(NETWORK_ETC_FILES) if network else [])
        for name in etc:
            p = Path("/etc") / name
            if p.exists():
                cmd += ["--ro-bind", str(p), str(p)]
        for dest, fd in (data_fds or {}).items():
            cmd += ["--perms", "0444", "--ro-bind-data", str(fd), dest]
        cmd += ["--symlink", SYSTEM_PYTHON, f"{SHIM_BIN}/python",
                "--proc", "/proc", "--dev", "/dev",
                "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp",
                "--dir", "/var/tmp"]
        if env_dir is not None:
            cmd += ["--bind" if env_writable else "--ro-bind", str(env_dir), str(env_dir)]
        for m in mounts:
            cmd += ["--bind" if m.writable else "--ro-bind", str(m.source), str(m.target)]
        cmd += ["--bind", str(workdir), str(workdir),
                "--remount-ro", "/",  # the sandbox's root tmpfs: nothing writable but binds
                "--chdir", str(workdir), "--", *argv]
        return cmd

    def _sandbox_env(self, workdir: Path, env_dir: Path | None, extra: dict[str, str] | None):
        path = SANDBOX_PATH
        e = {
            "HOME": "/tmp",
            "USER": "sandbox",
            "LOGNAME": "sandbox",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TMPDIR": "/tmp",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        if env_dir is not None:
            e["VIRTUAL_ENV"] = str(env_dir)
            path = f"{env_dir}/bin:{path}"
        else:
            # `python` -> /usr/bin/python3 (Debian ships no `python` command by default).
            path = f"{SHIM_BIN}:{path}"
        e["PATH"] = path
        if extra:
            e.update({str(k): str(v) for k, v in extra.items()})
        return e

    def _run(self, argv: list[str], workdir: Path, *, env_dir: Path | None, env_writable: bool,
             env: dict[str, str] | None, limits: Limits, mounts: tuple[Mount, ...] = ()) -> ExecResult:
        cgroup = _PidsCgroup.create(limits.pids) if self.use_cgroups else None
        data = {
            "/etc/passwd": (
                "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                f"sandbox:x:{self.run_as_uid}:{self.run_as_gid}:sandbox:/tmp:/bin/sh\n"
            ),
            "/etc/group": f"root:x:0:\nsandbox:x:{self.run_as_gid}:\n",
            "/etc/hosts": "127.0.0.1 localhost bugforge-sandbox\n::1 localhost\n",
        }
        data_fds: dict[str, int] = {}
        to_close: list[int] = []
        try:
            for dest, text in data.items():
                r, w = os.pipe()
                os.write(w, text.encode())  # tiny: fits in the pipe buffer
                os.close(w)
                data_fds[dest] = r
                to_close.append(r)
            status_r, status_w = os.pipe()
            to_close += [status_r, status_w]
            cmd = self.build_command(argv, workdir, env_dir=env_dir, env_writable=env_writable,
                                     network=limits.network, data_fds=data_fds,
                                     status_fd=status_w, mounts=mounts)
            preexec = _make_preexec(limits, self.run_as_uid, self.run_as_gid,
                                    cgroup.procs_file if cgroup else None)
            return self._spawn(cmd, workdir, self._sandbox_env(workdir, env_dir, env), limits,
                               preexec, [*data_fds.values(), status_w], cgroup,
                               status_r, status_w)
        finally:
            for fd in to_close:
                try:
                    os.close(fd)
                except OSError:
                    pass
            if cgroup is not None:
                cgroup.remove()

    def _spawn(self, cmd, workdir, env, limits, preexec, pass_fds, cgroup, status_r,
               status_w) -> ExecResult:
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, cwd="/", preexec_fn=preexec, pass_fds=tuple(pass_fds),
                close_fds=True,
            )
        except (OSError, subprocess.SubprocessError) as e:
            raise SandboxError(f"could not start bwrap: {e}") from e
        out, err = _Capture(limits.output_bytes), _Capture(limits.output_bytes)
        sel = selectors.DefaultSelector()
        for f, cap in ((proc.stdout, out), (proc.stderr, err)):
            os.set_blocking(f.fileno(), False)
            sel.register(f, selectors.EVENT_READ, cap)
        deadline = start + limits.timeout_s
        timed_out = crowded = False
        hard_stop = None  # after a kill, stop draining by then even if a pipe stays open
        try:
            while sel.get_map():
                now = time.monotonic()
                if not timed_out and now >= deadline:
                    timed_out = True
                    # a run that ran out of time while holding (nearly) every process it may
                    # have is a fork bomb: the pids limit is why it got nowhere
                    crowded = _tree_size(proc.pid) >= max(2, int(limits.pids * 0.8))
                    _kill(proc)
                    hard_stop = now + 5
                if hard_stop is not None and now >= hard_stop:
                    break
                wait = (hard_stop if hard_stop is not None else deadline) - now
                for key, _ in sel.select(timeout=max(0.0, min(wait, 1.0))):
                    try:
                        data = os.read(key.fd, 1 << 20)
                    except BlockingIOError:
                        continue
                    if not data:
                        sel.unregister(key.fileobj)
                    else:
                        key.data.feed(data)
            # Pipes closed: the sandbox is gone or going; reap bwrap (bounded).
            try:
                remaining = max(0.1, deadline - time.monotonic()) if not timed_out else 5
                status, ru = _wait4(proc, remaining)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill(proc)
                status, ru = _wait4(proc, 10)
        finally:
            sel.close()
            if proc.returncode is None:
                _kill(proc)
                try:
                    _wait4(proc, 10)
                except subprocess.TimeoutExpired:
                    pass
            proc.stdout.close()
            proc.stderr.close()
        duration = time.monotonic() - start
        status_text = _read_nonblocking(status_r)
        if '"child-pid"' not in status_text and not timed_out:
            # bwrap never started the command: the sandbox itself is broken.
            raise SandboxError(
                f"bwrap failed to set up the sandbox: {err.text()[-2000:].strip()}"
            )
        exit_code: int | None
        if os.WIFEXITED(status):
            exit_code = os.WEXITSTATUS(status)
        elif os.WIFSIGNALED(status):
            exit_code = 128 + os.WTERMSIG(status)
        else:
            exit_code = None
        if timed_out:
            exit_code = None
        stdout_text, stderr_text = out.text(), err.text()
        if timed_out:
            forks_refused = (cgroup is not None and cgroup.hit_max()) or _forks_refused(stderr_text[-20000:])
            killed_by = KILLED_PIDS if crowded or forks_refused else KILLED_TIMEOUT
        else:
            killed_by = _classify(exit_code, stderr_text, limits, ru, cgroup)
        return ExecResult(
            exit_code=exit_code, stdout=stdout_text, stderr=stderr_text, duration_s=duration,
            timed_out=timed_out, killed_by=killed_by, stdout_truncated=out.truncated,
            stderr_truncated=err.truncated, backend=self.name,
        )

    # ------------------------------------------------------------------ probe
    def probe(self) -> ProbeReport:
        features: dict = {"uid": self.run_as_uid}
        if sys.platform != "linux":
            return ProbeReport(self.name, False, "the local backend needs Linux", features)
        if not self.bwrap:
            return ProbeReport(self.name, False,
                               "bubblewrap is not installed (apt-get install bubblewrap)",
                               features)
        try:
            features["bwrap_version"] = subprocess.run(
                [self.bwrap, "--version"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
        features["cgroup_pids"] = bool(self.use_cgroups and os.geteuid() == 0
                                       and (PIDS_CGROUP_ROOT / "cgroup.procs").exists())
        features["rlimits"] = ["AS", "CPU", "FSIZE", "NPROC", "CORE"]
        probe_dir = Path(tempfile.mkdtemp(prefix="bugforge-probe-", dir="/var/tmp"))
        code = (
            "import os,socket,json\n"
            "r={'uid':os.getuid(),'pid':os.getpid()}\n"
            "try:\n socket.create_connection(('127.0.0.1',6379),timeout=1); r['net']=True\n"
            "except OSError: r['net']=False\n"
            "r['root_visible']=os.path.exists('/root')\n"
            "print(json.dumps(r))\n"
        )
        try:
            os.chmod(probe_dir, 0o755)
            res = self.run([SYSTEM_PYTHON, "-c", code], probe_dir,
                           limits=Limits(timeout_s=15, memory_mb=512, pids=32))
        except SandboxError as e:
            return ProbeReport(self.name, False, f"sandbox failed to start: {e}", features)
        finally:
            shutil.rmtree(probe_dir, ignore_errors=True)
        if res.exit_code != 0:
            return ProbeReport(self.name, False,
                               f"probe run failed (exit {res.exit_code}): {res.stderr[-500:]}",
                               features)
        try:
            info = json.loads(res.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return ProbeReport(self.name, False, f"unexpected probe output {res.stdout!r}",
                               features)
        features.update({
            "user_ns": True,
            "uid_inside": info["uid"],
            "pid_ns": info["pid"] < 10,
            "net_isolated": not info["net"],
            "root_hidden": not info["root_visible"],
            "python": SYSTEM_PYTHON,
        })
        ok = (features["pid_ns"] and features["net_isolated"] and info["uid"] != 0
              and features["root_hidden"])
        detail = ("bubblewrap sandbox works: user/pid/net namespaces, uid "
                  f"{info['uid']}, rlimits" + (", pids cgroup" if features["cgroup_pids"] else "")
                  if ok else f"sandbox probe shows weak isolation: {info}")
        return ProbeReport(self.name, bool(ok), detail, features)


# ---------------------------------------------------------------------- helpers
def _make_preexec(limits: Limits, uid: int, gid: int, cgroup_procs: str | None):
    mem = max(64, int(limits.memory_mb)) * 1024 * 1024
    fsize = max(1, int(limits.file_size_mb)) * 1024 * 1024
    # bwrap itself needs a few processes (monitor + pid 1) on top of the command's budget.
    nproc = max(8, int(limits.pids) + 4)
    if cgroup_procs:
        nproc = max(nproc * 4, 1024)  # the cgroup is the real per-run cap; NPROC is per uid
    cpu = limits.cpu_seconds

    def preexec() -> None:  # runs in the child, as root, before exec(bwrap)
        if cgroup_procs:
            try:
                with open(cgroup_procs, "w") as f:
                    f.write(str(os.getpid()))
            except OSError:
                pass
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if cpu:
            resource.setrlimit(resource.RLIMIT_CPU, (int(cpu), int(cpu) + 1))
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)

    return preexec


def _classify(exit_code, stderr: str, limits: Limits, ru, cgroup) -> str | None:
    if exit_code in (0, None):
        return None
    sig = exit_code - 128 if exit_code > 128 else None
    if sig == signal.SIGXCPU:
        return KILLED_CPU
    if sig == signal.SIGXFSZ:
        return KILLED_FILE_SIZE
    if sig == signal.SIGKILL and limits.cpu_seconds and ru is not None and (
        ru.ru_utime + ru.ru_stime >= limits.cpu_seconds
    ):
        return KILLED_CPU  # hard RLIMIT_CPU (soft + 1 s) is a SIGKILL
    if cgroup is not None and cgroup.hit_max():
        return KILLED_PIDS
    tail = stderr[-20000:]
    if "MemoryError" in tail or "Cannot allocate memory" in tail or (
        "std::bad_alloc" in tail
    ):
        return KILLED_MEMORY
    if "[Errno 27] File too large" in tail or "File size limit exceeded" in tail:
        return KILLED_FILE_SIZE
    if _forks_refused(tail):
        return KILLED_PIDS
    return None


def _forks_refused(tail: str) -> bool:
    """The run's own words for hitting the process limit."""
    return "can't start new thread" in tail or ("Resource temporarily unavailable" in tail and (
        "fork" in tail or "BlockingIOError" in tail))


def _tree_size(root: int) -> int:
    """How many processes descend from ``root`` (itself included), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    seen, todo = 0, [root]
    while todo:
        pid = todo.pop()
        seen += 1
        todo.extend(children.get(pid, ()))
    return seen


def _read_nonblocking(fd: int) -> str:
    os.set_blocking(fd, False)
    chunks = []
    try:
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
    except BlockingIOError:
        pass
    return b"".join(chunks).decode("utf-8", errors="replace")


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the outer bwrap; its pid-1 child dies via PDEATHSIG (--die-with-parent) and
    with it the whole pid namespace."""
    if proc.returncode is None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait4(proc: subprocess.Popen, timeout: float):
    """waitpid with rusage (for RLIMIT_CPU attribution) and a timeout."""
    end = time.monotonic() + timeout
    delay = 0.0002  # the pipes have closed: bwrap is exiting, usually within a millisecond
    while True:
        try:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:
            proc.returncode = proc.returncode if proc.returncode is not None else -1
            return 0, None
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, ru
        if time.monotonic() >= end:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


def _chown_tree(root: Path, uid: int, gid: int, owner_rw: bool = False) -> None:
    """lchown everything under ``root``; ``owner_rw``: also give the owner rw (rwx on dirs)."""
    def own(p) -> None:
        os.lchown(p, uid, gid)
        if owner_rw and not stat.S_ISLNK(mode := os.lstat(p).st_mode):
            os.chmod(p, mode | (0o700 if stat.S_ISDIR(mode) else 0o600))

    own(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            try:
                own(os.path.join(dirpath, name))
            except FileNotFoundError:
                pass


def _chmod_readable(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, os.stat(dirpath).st_mode | 0o555)
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | 0o444)


def _check(cmd: list[str], what: str, env=None, timeout: float = 600) -> None:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise SandboxError(f"{what} timed out after {timeout}s") from e
    except OSError as e:
        raise SandboxError(f"{what} failed: {e}") from e
    if p.returncode != 0:
        raise SandboxError(f"{what} failed (exit {p.returncode}): {p.stderr[-4000:]}")


__all__ = ["LocalExecutor", "SYSTEM_PYTHON", "DEFAULT_PYTEST"]
