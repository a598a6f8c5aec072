"""Docker backend: runs commands in containers through the ``docker`` SDK.

Developed and tested against Podman's Docker-compatible API service (``scripts/podman-service.sh``)
since these hosts have no Docker daemon and no image registry; it only uses the plain Docker
Engine API, so a real Docker daemon works too.

Images are made locally, without a registry:

* **base image** — a minimal root filesystem assembled from the host: ``/usr/bin/python3`` with
  its stdlib, the shared libraries ``ldd`` lists, a shell and a few coreutils (busybox when the
  host has it, else host binaries), pytest installed with ``pip --target`` and a small output
  capping runner. It is imported with ``POST /images/create?fromSrc=-`` and tagged by a hash of
  its inputs; built once per cache dir (file lock) and kept as a tarball for re-imports.
* **environment image** — base + ``spec.pip_packages`` (installed on the host with
  ``pip install --target``, containers have no network) + ``spec.setup_command`` run in a
  container that is then committed. Tagged by ``spec.key`` and the base tag.

Each run sees: no network, memory (= memory+swap), pids, 1 CPU, read-only root, a fresh tmpfs
``/tmp``, the workdir at ``/workspace``, no capabilities, no-new-privileges, uid 65534. A runner
(pid 1 of the run's pid namespace) executes the argv and copies at most ``limits.output_bytes``
of each stream, draining and dropping the rest, so a flood costs neither the worker's memory nor
the engine's log disk. The runner appends a status trailer (exit status, child CPU time, cgroup
OOM/pids counters) to stderr which the host strips and uses to tell *why* a run ended
(``State.OOMKilled`` reads False under Podman). Every container is labelled ``bugforge.sandbox=1``.

Runs go to **warm containers** (see ``programs/supervisor.py`` for the design and why): a long-lived
container per (image, workspaces root, memory/pids/network limits) whose supervisor builds a
per-run sandbox (own mount and pid namespaces, only the run's workdir mounted, privileges
dropped) without any engine API call, so a run costs a few milliseconds more than the command
instead of a container's create/start/wait/remove. Concurrency: a warm container serves one run at
a time (its cgroup limits are then the run's); an executor starts another one for a concurrent
run, and executors never share them, so worker processes (forked ones included) using one
engine stay independent. Idle warm containers are removed by ``close()``/``close_warm()``, at
interpreter exit, or by themselves after ``WARM_IDLE_S``. With ``warm=False`` (or
the ``BUGFORGE_DOCKER_WARM=0`` setting), or when the engine will not start one, each run is a fresh
container instead (``_run_cold``) with the same properties.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
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
    ProbeReport,
    SandboxError,
)

log = logging.getLogger(__name__)

BUILDER_VERSION = "3"  # bump when the rootfs assembly changes (part of the base image tag)
LABEL = "bugforge.sandbox"
IMAGE_REPO_BASE = "bugforge-sandbox/base"
IMAGE_REPO_ENV = "bugforge-sandbox/env"
SANDBOX_UID = 65534
SANDBOX_GID = 65534
WORKSPACE = "/workspace"
ARTIFACTS_DIR = "/opt/bugforge-artifacts"  # an install step's build outputs (see artifacts.py)
RUNNER_PATH = "/usr/lib/bugforge/runner.py"
IMAGE_PYTHON = "/usr/bin/python3"
STATUS_MAGIC = b"\x00BUGFORGE-RUNNER-STATUS:"
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
CONTROL_DIR = "/run/bugforge"  # in a warm container: the supervisor's source and socket
WARM_IDLE_S = 300  # a warm container's supervisor exits after this long without a request
WARM_MAX_IDLE = 4  # idle warm containers kept per executor (least recently used go first)
WARM_OVERHEAD_MB = 32  # the supervisor's memory on top of the run's limit
WARM_BACKSTOP_S = 30  # host-side wait past the run's timeout before giving up on a supervisor
IMAGE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "HOME": "/tmp",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}

# The two programs that run inside containers are real modules beside this one, read as text
# and copied into the image (runner) or a warm container's control dir (supervisor): see their
# docstrings for what each does and why warm containers exist.
PROGRAMS = Path(__file__).resolve().parent / "programs"
RUNNER_SOURCE = (PROGRAMS / "runner.py").read_text()
SUPERVISOR_SOURCE = (PROGRAMS / "supervisor.py").read_text()


# A few tools tests commonly shell out to, used when the host has no busybox.
HOST_TOOLS = (
    "sh", "bash", "cat", "ls", "sleep", "yes", "env", "echo", "true", "false", "id", "head",
    "tail", "mkdir", "rm", "rmdir", "cp", "mv", "touch", "wc", "grep", "sed", "chmod", "kill",
    "printf", "test", "uname", "pwd", "sort", "uniq", "tr", "cut", "dirname", "basename",
    "readlink", "find", "xargs", "tee", "timeout", "nproc", "whoami", "date", "diff", "ps",
)
STDLIB_SKIP = {"site-packages", "dist-packages", "ensurepip", "idlelib", "tkinter", "turtledemo",
               "__phello__", "test"}


def _sanitize_tag(text: str) -> str:
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", text).strip(".-") or "env"
    return tag[:120]


def _limits_tmpfs_mb(limits: Limits) -> int:
    return max(16, min(512, limits.memory_mb // 4))


class _WarmUnavailable(Exception):
    """Warm containers cannot be used with this engine (the cold path still works)."""


class _NotDelivered(Exception):
    """A run request never reached the supervisor: nothing ran."""


class _WarmContainer:
    """A running warm container and the host end of its supervisor's control socket."""

    def __init__(self, key: tuple, container, ctl_dir: Path, sock: Path):
        self.key, self.container, self.ctl_dir, self.sock = key, container, ctl_dir, sock
        self.last_used = time.monotonic()

    def request(self, payload: dict, fds: list[int], timeout: float) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            try:
                conn.settimeout(10)
                conn.connect(str(self.sock))
                conn.settimeout(timeout)
                socket.send_fds(conn, [json.dumps(payload).encode() + b"\n"], fds)
            except OSError as exc:
                raise _NotDelivered(str(exc)) from exc
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = conn.recv(1 << 16)  # TimeoutError past the backstop
                if not chunk:
                    raise ConnectionError("the supervisor closed the connection")
                buf += chunk
        return json.loads(buf)


# executors holding warm containers, emptied at interpreter exit (strong references: an
# executor dropped without close() must still have its containers removed)
_LIVE_EXECUTORS: "set[DockerExecutor]" = set()


def _sweep_stale_control_dirs() -> None:
    """Control directories of warm containers gone without a close() (a killed worker)."""
    for d in Path(tempfile.gettempdir()).glob("bugforge-ctl-*"):
        try:
            if time.time() - d.stat().st_mtime < WARM_IDLE_S + 60:
                continue
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(1)
                probe.connect(str(d / "ctl.sock"))  # answers: still in use
        except OSError:
            shutil.rmtree(d, ignore_errors=True)


@atexit.register
def _close_live_executors() -> None:
    for ex in list(_LIVE_EXECUTORS):
        with contextlib.suppress(Exception):
            ex.close_warm()


class DockerExecutor:
    """``Executor`` backed by a Docker Engine API (Docker or Podman's compat service)."""

    name = "docker"

    def __init__(self, base_url: str | None, cache_dir: Path | str, *, python: str = "/usr/bin/python3",
                 api_timeout: float = 300.0, labels: dict[str, str] | None = None,
                 warm: bool = True):
        self.base_url = base_url or DEFAULT_SOCKET
        # extra labels on every container this executor starts (e.g. to tell a test's own apart)
        self.labels = dict(labels or {})
        self.cache_dir = Path(cache_dir)
        self.host_python = python
        self.api_timeout = api_timeout
        self._client = None
        self._base_tag: str | None = None
        self.last_build_s: dict[str, float] = {}
        self.warm = warm  # warm containers (see programs/supervisor.py); False: one container per run
        self._warm_lock = threading.Lock()
        self._warm_idle: dict[tuple, list[_WarmContainer]] = {}
        self._warm_pid = os.getpid()

    @classmethod
    def from_env(cls, cache_dir: Path | str, url: str | None = None, **kwargs) -> "DockerExecutor":
        """``url``, else BUGFORGE_DOCKER_URL or DOCKER_HOST from the environment (as
        ``scripts/podman-service.sh`` and the Docker SDK set them), else the default socket."""
        url = url or os.environ.get("BUGFORGE_DOCKER_URL") or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
        return cls(url, cache_dir, **kwargs)

    # ------------------------------------------------------------------ client / probe
    @property
    def client(self):
        if self._client is None:
            try:
                import docker  # noqa: PLC0415  (optional dependency at import time)
            except ImportError as exc:  # pragma: no cover - docker is in requirements.txt
                raise SandboxError(f"the docker SDK is not installed: {exc}") from exc
            try:
                self._client = docker.DockerClient(base_url=self.base_url, timeout=self.api_timeout)
            except Exception as exc:
                raise SandboxError(f"cannot reach the container engine at {self.base_url}: {exc}") from exc
        return self._client

    def probe(self) -> ProbeReport:
        try:
            import docker  # noqa: F401, PLC0415
        except ImportError as exc:
            return ProbeReport(self.name, False, f"docker SDK not installed: {exc}")
        try:
            client = docker.DockerClient(base_url=self.base_url, timeout=10)
            client.ping()
            version = client.version()
            client.close()
        except Exception as exc:  # noqa: BLE001 - probe never raises
            return ProbeReport(self.name, False, f"container engine not reachable at {self.base_url}: {exc}")
        components = [c.get("Name", "") for c in version.get("Components") or []]
        engine = "podman" if any("podman" in c.lower() for c in components) else "docker"
        detail = (f"{engine} {version.get('Version', '?')} (API {version.get('ApiVersion', '?')}) "
                  f"at {self.base_url}")
        features = {
            "engine": engine,
            "version": version.get("Version"),
            "api_version": version.get("ApiVersion"),
            "os": version.get("Os"),
            "kernel": version.get("KernelVersion"),
            "network_isolation": True,
            "memory_limit": True,
            "pids_limit": True,
            "read_only_root": True,
            "non_root": True,
            "oom_detection": "inferred (exit 137 / cgroup oom_kill counter)",
        }
        return ProbeReport(self.name, True, detail, features)

    def close(self) -> None:
        self.close_warm()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    # ------------------------------------------------------------------ images
    def _image_exists(self, tag: str) -> bool:
        import docker.errors  # noqa: PLC0415

        try:
            self.client.images.get(tag)
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as exc:
            if getattr(exc, "status_code", None) == 404:
                return False
            raise SandboxError(f"cannot inspect image {tag}: {exc}") from exc

    def _host_python_info(self) -> dict:
        code = (
            "import sys, sysconfig, json; print(json.dumps({'version': list(sys.version_info[:3]),"
            " 'stdlib': sysconfig.get_paths()['stdlib'], 'exe': sys.executable,"
            " 'dynload': __import__('os').path.dirname(__import__('_json').__file__)"
            " if hasattr(__import__('_json'), '__file__') else ''}))"
        )
        try:
            out = subprocess.run([self.host_python, "-I", "-c", code], capture_output=True, text=True,
                                 check=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxError(f"cannot run host python {self.host_python}: {exc}") from exc
        info = json.loads(out)
        info["real_exe"] = os.path.realpath(self.host_python)
        return info

    def _pytest_requirement(self) -> str:
        try:
            from importlib.metadata import version  # noqa: PLC0415

            return f"pytest=={version('pytest')}"
        except Exception:  # noqa: BLE001
            return "pytest"

    def _base_fingerprint(self, info: dict) -> str:
        h = hashlib.sha256()
        h.update(BUILDER_VERSION.encode())
        h.update(RUNNER_SOURCE.encode())
        h.update(self._pytest_requirement().encode())
        h.update(json.dumps(info, sort_keys=True).encode())
        for p in (info["real_exe"], info["stdlib"], shutil.which("busybox") or ""):
            if p and os.path.exists(p):
                st = os.stat(p)
                h.update(f"{p}:{st.st_size}:{int(st.st_mtime)}".encode())
        return h.hexdigest()[:16]

    def ensure_base_image(self) -> str:
        """Build (once) and import the base image; return its tag."""
        if self._base_tag and self._image_exists(self._base_tag):
            return self._base_tag
        info = self._host_python_info()
        if tuple(info["version"][:2]) < (3, 8):
            raise SandboxError(f"host python {self.host_python} is too old: {info['version']}")
        fp = self._base_fingerprint(info)
        tag = f"{IMAGE_REPO_BASE}:{fp}"
        if self._image_exists(tag):
            self._base_tag = tag
            return tag
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.cache_dir / "base-image.lock"):
            if self._image_exists(tag):
                self._base_tag = tag
                return tag
            t0 = time.monotonic()
            tarball = self.cache_dir / f"base-{fp}.tar"
            if not tarball.exists():
                self._build_base_tarball(info, tarball)
            self._import_tarball(tarball, tag)
            self.last_build_s["base"] = time.monotonic() - t0
            log.info("built sandbox base image %s in %.1fs", tag, self.last_build_s["base"])
        self._base_tag = tag
        return tag

    def _import_tarball(self, tarball: Path, tag: str) -> None:
        digest = hashlib.sha256()
        with open(tarball, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        changes = [f"ENV {k}={v}" for k, v in IMAGE_ENV.items()]
        changes += [f"LABEL {LABEL}.base=1", f"LABEL {LABEL}.content-sha256={digest.hexdigest()}",
                    f"WORKDIR {WORKSPACE}"]
        repo, _, version = tag.partition(":")
        try:
            # from a path: docker-py streams the open file (the *_from_stream variant sends a
            # bogus "Transfer-Encoding: chunked" header that Podman rejects)
            raw = self.client.api.import_image_from_file(str(tarball), repository=repo, tag=version,
                                                         changes=changes)
        except Exception as exc:  # noqa: BLE001
            raise SandboxError(f"importing the base image failed: {exc}") from exc
        image_id = None
        for line in str(raw).splitlines():
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                if msg.get("error"):
                    raise SandboxError(f"importing the base image failed: {msg['error']}")
                image_id = msg.get("id") or msg.get("status") or image_id
        # Podman's compat import ignores repo/tag (names it "<repo>:latest"): tag explicitly.
        try:
            image = self.client.images.get(image_id) if image_id else self.client.images.get(f"{repo}:latest")
            image.tag(repo, version)
        except Exception as exc:  # noqa: BLE001
            raise SandboxError(f"tagging the imported base image failed ({raw!r}): {exc}") from exc
        if f"{repo}:latest" != tag:
            with contextlib.suppress(Exception):  # only an extra name; the image keeps `tag`
                if len(self.client.images.get(tag).tags) > 1:
                    self.client.api.remove_image(f"{repo}:latest", noprune=True)

    # ---- rootfs assembly
    def _build_base_tarball(self, info: dict, tarball: Path) -> None:
        work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=self.cache_dir))
        try:
            root = work / "rootfs"
            root.mkdir()
            self._assemble_rootfs(info, root)
            tmp_tar = tarball.with_suffix(".tar.part")
            self._write_tar(root, tmp_tar)
            os.replace(tmp_tar, tarball)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        # keep only the newest few tarballs
        olds = sorted(self.cache_dir.glob("base-*.tar"), key=lambda p: p.stat().st_mtime)[:-2]
        for old in olds:
            with contextlib.suppress(OSError):
                old.unlink()

    @staticmethod
    def _copy_file(src: str, root: Path, dest: str | None = None) -> None:
        """Copy host file ``src`` to ``root/dest`` (default: its real path), keeping modes/mtime."""
        real = os.path.realpath(src)
        target = root / (dest or real).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(real, target)
        if dest is None:
            # the path as referenced (e.g. /lib/x86_64-linux-gnu/libz.so.1 -> libz.so.1.2.13)
            ref = os.path.join(os.path.realpath(os.path.dirname(src)), os.path.basename(src))
            if ref != real:
                link = root / ref.lstrip("/")
                link.parent.mkdir(parents=True, exist_ok=True)
                if not os.path.lexists(link):
                    os.symlink(os.path.basename(real) if os.path.dirname(ref) == os.path.dirname(real)
                               else real, link)

    @staticmethod
    def _ldd(paths: list[str]) -> set[str]:
        libs: set[str] = set()
        for path in paths:
            try:
                out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=30).stdout
            except (OSError, subprocess.SubprocessError):
                continue
            for line in out.splitlines():
                m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
                if m and os.path.exists(m.group(1)):
                    libs.add(m.group(1))
        return libs

    def _assemble_rootfs(self, info: dict, root: Path) -> None:
        # usr-merged layout like the host
        for d in ("usr/bin", "usr/lib", "usr/lib64", "usr/sbin", "usr/local/bin", "etc", "proc",
                  "sys", "dev", "run", "var/tmp", "home", "opt", WORKSPACE.lstrip("/")):
            (root / d).mkdir(parents=True, exist_ok=True)
        for top in ("bin", "lib", "lib64", "sbin"):
            if os.path.islink(f"/{top}"):
                os.symlink(os.readlink(f"/{top}"), root / top)
            else:
                (root / top).mkdir(exist_ok=True)
        (root / "tmp").mkdir()
        os.chmod(root / "tmp", 0o1777)
        os.chmod(root / "var/tmp", 0o1777)
        os.chmod(root / WORKSPACE.lstrip("/"), 0o777)
        (root / "root").mkdir(mode=0o700)

        # python + stdlib
        exe = info["real_exe"]
        self._copy_file(exe, root)
        exe_name = os.path.basename(exe)
        bindir = root / os.path.dirname(exe).lstrip("/")
        for alias in ("python3", "python"):
            if not os.path.lexists(bindir / alias):
                os.symlink(exe_name, bindir / alias)
        if os.path.dirname(exe) != "/usr/bin":
            for alias in ("python3", "python"):
                if not os.path.lexists(root / "usr/bin" / alias):
                    os.symlink(exe, root / "usr/bin" / alias)
        stdlib = info["stdlib"]

        def _ignore(d, names):
            skip = set()
            for n in names:
                if d == stdlib and (n in STDLIB_SKIP or n.startswith("config-")):
                    skip.add(n)
                elif n.endswith((".a", ".exe")):
                    skip.add(n)
            return skip

        shutil.copytree(stdlib, root / stdlib.lstrip("/"), symlinks=False, ignore=_ignore,
                        ignore_dangling_symlinks=True, dirs_exist_ok=True)
        dynload = info.get("dynload") or ""
        so_files = [str(p) for p in (root / stdlib.lstrip("/")).rglob("*.so")]
        if dynload and not dynload.startswith(stdlib):
            shutil.copytree(dynload, root / dynload.lstrip("/"), dirs_exist_ok=True)
            so_files += [str(p) for p in Path(dynload).glob("*.so")]
        # host paths for ldd (the copies are identical)
        host_sos = [str(Path("/") / Path(p).relative_to(root)) for p in so_files]

        # shell and tools
        tools: list[str] = []
        busybox = shutil.which("busybox")
        if busybox:
            self._copy_file(busybox, root, "/usr/bin/busybox")
            tools.append(busybox)
            try:
                applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                                         timeout=30).stdout.split()
            except (OSError, subprocess.SubprocessError):
                applets = ["sh", "cat", "ls", "sleep", "yes", "env", "echo", "id"]
            for applet in applets:
                if applet and "/" not in applet and not os.path.lexists(root / "usr/bin" / applet):
                    os.symlink("busybox", root / "usr/bin" / applet)
        else:
            for name in HOST_TOOLS:
                path = shutil.which(name, path="/usr/bin:/bin")
                if path and not os.path.lexists(root / "usr/bin" / name):
                    self._copy_file(path, root, f"/usr/bin/{name}")
                    tools.append(path)
        if not os.path.lexists(root / "usr/bin/sh"):
            raise SandboxError("no shell for the sandbox image: neither busybox nor /bin/sh found")

        for lib in sorted(self._ldd([exe, *host_sos, *tools])):
            self._copy_file(lib, root)

        # minimal /etc
        (root / "etc/passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/tmp:/bin/sh\n")
        (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
        (root / "etc/hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
        for name in ("resolv.conf", "hostname"):
            (root / "etc" / name).write_text("")
        (root / "etc/nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files\n")

        # runner + pytest
        runner = root / RUNNER_PATH.lstrip("/")
        runner.parent.mkdir(parents=True, exist_ok=True)
        runner.write_text(RUNNER_SOURCE)
        site = root / "usr/lib/python3/dist-packages"
        self._pip_install_target([self._pytest_requirement()], site, info)

        # precompile everything with the image's interpreter so runs never compile
        subprocess.run([exe, "-I", "-m", "compileall", "-q", "-j", "0", "-s", str(root), "-p", "/",
                        str(root / stdlib.lstrip("/")), str(site), str(runner.parent)],
                       capture_output=True, timeout=600)

    def _pip_install_target(self, requirements: list[str], target: Path, info: dict) -> None:
        """``pip install --target`` on the host (the sandbox has no network)."""
        target.mkdir(parents=True, exist_ok=True)
        if not requirements:
            return
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-input", "--no-compile", "--target", str(target)]
        if tuple(sys.version_info[:2]) != tuple(info["version"][:2]):
            cmd += ["--python-version", "%d.%d" % tuple(info["version"][:2]), "--only-binary=:all:"]
        cmd += list(requirements)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            if self._copy_installed(requirements, target):
                log.warning("pip install failed (%s); copied installed distributions instead",
                            proc.stderr.strip()[-300:])
            else:
                raise SandboxError(f"pip install --target failed for {requirements}: "
                                   f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
        # console scripts: pip writes them with the worker's interpreter in the shebang
        bindir = target / "bin"
        if bindir.is_dir():
            dest = target.parents[3] / "bin" if target.parts[-4:-2] == ("usr", "local") else None
            for script in bindir.iterdir():
                with contextlib.suppress(OSError, UnicodeDecodeError):
                    text = script.read_text()
                    if text.startswith("#!") and "python" in text.split("\n", 1)[0]:
                        script.write_text(f"#!{IMAGE_PYTHON}\n" + text.split("\n", 1)[1])
                if dest is not None:
                    dest.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(script), dest / script.name)
            if dest is not None:
                shutil.rmtree(bindir, ignore_errors=True)

    @staticmethod
    def _copy_installed(requirements: list[str], target: Path) -> bool:
        """Offline fallback: copy the worker's installed distributions (pure Python ones)."""
        try:
            from importlib import metadata  # noqa: PLC0415

            from packaging.requirements import Requirement  # noqa: PLC0415
        except ImportError:
            return False
        seen: set[str] = set()
        queue = [Requirement(r).name for r in requirements]
        try:
            while queue:
                name = queue.pop()
                key = name.lower().replace("_", "-")
                if key in seen:
                    continue
                seen.add(key)
                dist = metadata.distribution(name)
                for f in dist.files or ():
                    src = Path(dist.locate_file(f))
                    if f.parts[0] in ("..", "bin") or not src.is_file() or "__pycache__" in f.parts:
                        continue
                    dst = target / f
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
                for req in dist.requires or ():
                    r = Requirement(req)
                    if r.marker is None or r.marker.evaluate({"extra": ""}):
                        queue.append(r.name)
        except Exception:  # noqa: BLE001
            return False
        return True

    @staticmethod
    def _write_tar(root: Path, dest: Path) -> None:
        def _filter(ti: tarfile.TarInfo) -> tarfile.TarInfo:
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            return ti

        with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                for name in sorted(dirnames) + sorted(filenames):
                    full = os.path.join(dirpath, name)
                    tf.add(full, arcname=os.path.relpath(full, root), recursive=False, filter=_filter)

    # ------------------------------------------------------------------ environments
    def ensure_environment(self, spec: EnvironmentSpec, source_dir: Path) -> str:
        base = self.ensure_base_image()
        if spec.python not in ("python3", "python", IMAGE_PYTHON, os.path.basename(self.host_python),
                               os.path.basename(os.path.realpath(self.host_python))):
            raise SandboxError(f"the docker backend only provides the host's {self.host_python}; "
                               f"spec asks for {spec.python!r}")
        base_fp = base.rsplit(":", 1)[1][:8]
        tag = f"{IMAGE_REPO_ENV}:{_sanitize_tag(spec.key)}-{base_fp}"
        if self._image_exists(tag):
            return tag
        with file_lock(self.cache_dir / f"env-{_sanitize_tag(spec.key)}.lock"):
            if self._image_exists(tag):
                return tag
            t0 = time.monotonic()
            self._build_environment(spec, Path(source_dir), base, tag)
            self.last_build_s[spec.key] = time.monotonic() - t0
        return tag

    def _build_environment(self, spec: EnvironmentSpec, source_dir: Path, base: str, tag: str) -> None:
        repo, _, version = tag.partition(":")
        pkgs = [p for p in spec.pip_packages if p.strip()]
        if not pkgs and not spec.setup_command.strip():
            self.client.images.get(base).tag(repo, version)
            return
        info = self._host_python_info()
        work = Path(tempfile.mkdtemp(prefix="env-", dir=self.cache_dir))
        container = None
        try:
            layer = work / "layer"
            pyver = "python%d.%d" % tuple(info["version"][:2])
            self._pip_install_target(pkgs, layer / "usr/local/lib" / pyver / "dist-packages", info)
            src_copy = work / "src"
            if source_dir and Path(source_dir).is_dir():
                shutil.copytree(source_dir, src_copy, symlinks=True,
                                ignore=shutil.ignore_patterns(".git"))
            else:
                src_copy.mkdir()
            command = ["/bin/sh", "-c", spec.setup_command] if spec.setup_command.strip() else ["true"]
            container = self.client.containers.create(
                base, command, user="0:0", working_dir=WORKSPACE, network_mode="none",
                labels={**self.labels, LABEL: "1", f"{LABEL}.build": spec.key},
                volumes={str(src_copy): {"bind": WORKSPACE, "mode": "rw"}},
                mem_limit="4g", memswap_limit="4g", pids_limit=512, cap_drop=["ALL"],
                cap_add=["CHOWN", "DAC_OVERRIDE", "FOWNER"], security_opt=["no-new-privileges"],
                environment={"HOME": "/root"},
            )
            if not container.put_archive("/", self._tar_bytes(layer)):
                raise SandboxError("copying the pip layer into the build container failed")
            container.start()
            result = container.wait(timeout=1800)
            if result.get("StatusCode") != 0:
                tail = container.logs(tail=50).decode("utf-8", "replace")
                raise SandboxError(f"setup for {spec.name!r} ({spec.key}) failed "
                                   f"(exit {result.get('StatusCode')}):\n{tail}")
            # what the step built in the copy is hidden by each run's /workspace mount: keep
            # it in the image, served to workspace packages by a finder (see artifacts.py)
            extra = work / "artifacts"
            if artifacts.collect(source_dir, src_copy, extra / ARTIFACTS_DIR.lstrip("/")):
                artifacts.install_finder(extra / "usr/local/lib" / pyver / "dist-packages", ARTIFACTS_DIR)
                if not container.put_archive("/", self._tar_bytes(extra)):
                    raise SandboxError("copying the build artifacts into the environment image failed")
            container.commit(repo, version, changes=f"LABEL {LABEL}.env={spec.key}")
        except SandboxError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise SandboxError(f"building environment {spec.key} failed: {exc}") from exc
        finally:
            if container is not None:
                self._remove(container)
            shutil.rmtree(work, ignore_errors=True)

    @staticmethod
    def _tar_bytes(root: Path) -> bytes:
        """``root``'s contents as a tar for put_archive: owned by root, readable by all."""
        def _filter(ti: tarfile.TarInfo) -> tarfile.TarInfo:
            ti.uid = ti.gid = 0
            ti.mode = (ti.mode & 0o755) | (0o755 if ti.isdir() else 0o644)
            return ti

        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for top in sorted(root.iterdir()):
                tf.add(top, arcname=top.name, filter=_filter)
        return buf.getvalue()

    # ------------------------------------------------------------------ run
    def run(
        self,
        argv: list[str],
        workdir: Path,
        *,
        environment: str | None = None,
        env: dict[str, str] | None = None,
        limits: Limits = Limits(),
    ) -> ExecResult:
        if not argv:
            raise SandboxError("empty argv")
        workdir = Path(workdir).resolve()
        if not workdir.is_dir():
            raise SandboxError(f"workdir {workdir} does not exist")
        image = environment or self.ensure_base_image()
        command = [IMAGE_PYTHON, "-I", "-S", RUNNER_PATH, str(max(0, int(limits.output_bytes))),
                   TRUNCATION_MARKER.encode().hex(), STATUS_MAGIC.hex(), "--", *map(str, argv)]
        environment_vars = {k: v for k, v in IMAGE_ENV.items() if k not in ("LANG", "LC_ALL")}
        environment_vars.update({str(k): str(v) for k, v in (env or {}).items()})
        restore = self._prepare_workdir(workdir)
        try:
            if self.warm:
                try:
                    return self._run_warm(image, command, environment_vars, workdir, limits)
                except _WarmUnavailable as exc:
                    # e.g. an engine that refuses CAP_SYS_ADMIN: slower, equally contained
                    log.warning("warm sandbox containers unavailable, one container per run: %s", exc)
                    self.warm = False
            return self._run_cold(image, command, environment_vars, workdir, limits)
        finally:
            restore()

    @staticmethod
    def _rlimits(limits: Limits) -> dict[str, tuple[int, int]]:
        """Per-process limits of a run (resource.RLIMIT_* name -> (soft, hard))."""
        rl = {
            "RLIMIT_FSIZE": (limits.file_size_mb << 20, limits.file_size_mb << 20),
            # RLIMIT_DATA (private writable mappings, incl. anonymous mmap since Linux 4.7):
            # an untouched bytearray(4 GB) fails with MemoryError instead of living on lazily
            # committed pages below the cgroup limit.
            "RLIMIT_DATA": (limits.memory_mb << 20, limits.memory_mb << 20),
        }
        if limits.cpu_seconds:
            rl["RLIMIT_CPU"] = (int(limits.cpu_seconds), int(limits.cpu_seconds) + 1)
        return rl

    # ---- warm path: a long-lived container per (image, workspaces root, container limits)
    def _run_warm(self, image: str, command: list[str], environment_vars: dict[str, str],
                  workdir: Path, limits: Limits) -> ExecResult:
        key = (image, str(workdir.parent), int(limits.memory_mb), int(limits.pids), bool(limits.network))
        request = {
            "name": workdir.name,
            "argv": command,
            "env": environment_vars,
            "uid": SANDBOX_UID,
            "gid": SANDBOX_GID,
            "timeout": max(0.1, float(limits.timeout_s)),
            "tmpfs_mb": _limits_tmpfs_mb(limits),
            "rlimits": self._rlimits(limits),
        }
        for attempt in range(2):
            warm = self._warm_acquire(key, image, workdir.parent, limits)
            with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
                t0 = time.monotonic()
                try:
                    reply = warm.request(request, [out_f.fileno(), err_f.fileno()],
                                         timeout=limits.timeout_s + WARM_BACKSTOP_S)
                except _NotDelivered as exc:
                    # nothing ran (e.g. the supervisor idled out): a fresh container, once
                    self._warm_discard(warm)
                    if attempt == 0:
                        continue
                    raise SandboxError(f"warm sandbox container not answering: {exc}") from exc
                except OSError as exc:
                    # mid-run: the supervisor hung past the backstop or died; the container goes,
                    # and with it every process of the run
                    self._warm_discard(warm)
                    if not isinstance(exc, TimeoutError):
                        raise SandboxError(f"warm sandbox container died during the run: {exc}") from exc
                    reply = {"status": None, "timed_out": True, "duration": time.monotonic() - t0}
                if reply.get("status") is None and not reply.get("timed_out"):
                    # the sandbox could not be set up (e.g. the workspaces root was replaced
                    # since the container started): nothing of the command ran
                    self._warm_discard(warm)
                    if attempt == 0:
                        continue
                    raise SandboxError(f"warm sandbox container refused the run: {reply.get('error')}")
                bound = max(0, int(limits.output_bytes)) + len(TRUNCATION_MARKER.encode()) + 65536
                out_f.seek(0)
                err_f.seek(0)
                out, err = out_f.read(bound), err_f.read(bound)
            status = reply["status"]
            exit_code = None
            if status is not None:
                exit_code = (128 + os.WTERMSIG(status)) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            timed_out = bool(reply.get("timed_out"))
            duration = float(reply.get("duration") or 0.0)
            if timed_out:
                duration = max(duration, limits.timeout_s)
            before = reply.get("before") or {}
            result, trailer = self._result(exit_code, out, err, duration, timed_out, limits,
                                           baseline=before, with_trailer=True)
            # Reuse the container only after a clean run: no timeout, no limit hit, nothing left
            # running, cgroup counters unchanged (the next run then starts from a known state).
            clean = (not timed_out and result.killed_by is None and not reply.get("leftover")
                     and trailer is not None and exit_code is not None and exit_code < 128
                     and all(trailer.get(k) == before.get(k) for k in ("oom_kill", "pids_max_events")))
            if clean:
                self._warm_release(warm)
            else:
                self._warm_discard(warm)
            return result
        raise AssertionError("unreachable")

    def _warm_acquire(self, key: tuple, image: str, root: Path, limits: Limits) -> "_WarmContainer":
        with self._warm_lock:
            if self._warm_pid != os.getpid():
                # a forked worker: the parent owns those containers; never share one
                self._warm_idle, self._warm_pid = {}, os.getpid()
            idle = self._warm_idle.get(key) or []
            while idle:
                warm = idle.pop()
                if time.monotonic() - warm.last_used < WARM_IDLE_S - 30:
                    return warm
                self._warm_discard(warm)  # about to idle out on its own
        return self._warm_start(key, image, root, limits)

    def _warm_release(self, warm: "_WarmContainer") -> None:
        warm.last_used = time.monotonic()
        with self._warm_lock:
            if self._warm_pid != os.getpid():
                return
            self._warm_idle.setdefault(warm.key, []).append(warm)
            pool = sorted((w for ws in self._warm_idle.values() for w in ws), key=lambda w: w.last_used)
            for old in pool[:-WARM_MAX_IDLE]:
                self._warm_idle[old.key].remove(old)
                self._warm_discard(old)

    def _warm_discard(self, warm: "_WarmContainer") -> None:
        self._remove(warm.container)
        shutil.rmtree(warm.ctl_dir, ignore_errors=True)

    def _warm_start(self, key: tuple, image: str, root: Path, limits: Limits) -> "_WarmContainer":
        import docker.errors  # noqa: PLC0415
        import docker.types  # noqa: PLC0415

        _sweep_stale_control_dirs()
        # root-only control directory: the supervisor's source and its socket
        ctl_dir = Path(tempfile.mkdtemp(prefix="bugforge-ctl-"))
        (ctl_dir / "supervisor.py").write_text(SUPERVISOR_SOURCE)
        sock = ctl_dir / "ctl.sock"
        try:
            container = self.client.containers.run(
                image,
                [IMAGE_PYTHON, "-I", "-S", f"{CONTROL_DIR}/supervisor.py", f"{CONTROL_DIR}/ctl.sock",
                 str(WARM_IDLE_S)],
                detach=True,
                auto_remove=True,
                name=f"bugforge-warm-{uuid.uuid4().hex[:16]}",
                labels={**self.labels, LABEL: "1", f"{LABEL}.warm": "1"},
                user="0:0",
                working_dir="/",
                network_mode="bridge" if limits.network else "none",
                # the supervisor's own ~15 MB on top of the run's memory; its two processes
                # (supervisor and the per-run helper) on top of the run's pids
                mem_limit=f"{int(limits.memory_mb) + WARM_OVERHEAD_MB}m",
                memswap_limit=f"{int(limits.memory_mb) + WARM_OVERHEAD_MB}m",
                pids_limit=int(limits.pids) + 2,
                nano_cpus=1_000_000_000,
                read_only=True,
                volumes={str(root): {"bind": WORKSPACE, "mode": "rw"},
                         str(ctl_dir): {"bind": CONTROL_DIR, "mode": "rw"}},
                cap_drop=["ALL"],
                # the supervisor's only privileges, all dropped before a run's first exec
                cap_add=["SYS_ADMIN", "SETUID", "SETGID", "SETPCAP", "KILL"],
                security_opt=["no-new-privileges"],
                ulimits=[docker.types.Ulimit(name="nofile", soft=4096, hard=4096),
                         docker.types.Ulimit(name="nproc", soft=32768, hard=32768)],
                log_config={"Type": "k8s-file", "Config": {"max-size": str(1 << 20)}},
            )
        except docker.errors.ImageNotFound as exc:
            shutil.rmtree(ctl_dir, ignore_errors=True)
            raise SandboxError(f"sandbox image {image} not found: {exc}") from exc
        except Exception as exc:  # noqa: BLE001
            shutil.rmtree(ctl_dir, ignore_errors=True)
            raise _WarmUnavailable(f"the engine would not start a warm container: {exc}") from exc
        warm = _WarmContainer(key, container, ctl_dir, sock)
        _LIVE_EXECUTORS.add(self)
        deadline = time.monotonic() + 60
        while not sock.exists():
            if time.monotonic() > deadline:
                logs = ""
                with contextlib.suppress(Exception):
                    logs = container.logs(tail=20).decode("utf-8", "replace")
                self._warm_discard(warm)
                raise _WarmUnavailable(f"the warm container's supervisor did not start: {logs[-2000:]}")
            time.sleep(0.01)
        return warm

    def close_warm(self) -> None:
        """Remove this executor's idle warm containers (they also end on their own when idle)."""
        with self._warm_lock:
            pool = [w for ws in self._warm_idle.values() for w in ws] if self._warm_pid == os.getpid() else []
            self._warm_idle = {}
        _LIVE_EXECUTORS.discard(self)
        for warm in pool:
            self._warm_discard(warm)

    # ---- cold path: one container per run
    def _run_cold(self, image: str, command: list[str], environment_vars: dict[str, str],
                  workdir: Path, limits: Limits) -> ExecResult:
        import docker.errors  # noqa: PLC0415
        import docker.types  # noqa: PLC0415
        import requests  # noqa: PLC0415

        run_id = uuid.uuid4().hex[:16]
        # Explicit ulimits replace the engine's defaults; Podman's default nofile exceeds what
        # these hosts allow ("setrlimit ... operation not permitted"), so always set nofile/nproc.
        # ("as" is not accepted by the Docker API.)
        names = {"RLIMIT_FSIZE": "fsize", "RLIMIT_DATA": "data", "RLIMIT_CPU": "cpu"}
        ulimits = [docker.types.Ulimit(name="nofile", soft=4096, hard=4096),
                   docker.types.Ulimit(name="nproc", soft=32768, hard=32768)]
        ulimits += [docker.types.Ulimit(name=names[k], soft=soft, hard=hard)
                    for k, (soft, hard) in self._rlimits(limits).items()]
        log_max = max(16 << 20, 64 * (2 * int(limits.output_bytes) + (64 << 10)))
        container = None
        timed_out = False
        t0 = time.monotonic()
        try:
            try:
                container = self.client.containers.create(
                    image,
                    command,
                    name=f"bugforge-run-{run_id}",
                    labels={**self.labels, LABEL: "1", f"{LABEL}.run": run_id},
                    working_dir=WORKSPACE,
                    user=f"{SANDBOX_UID}:{SANDBOX_GID}",
                    environment=environment_vars,
                    network_mode="bridge" if limits.network else "none",
                    mem_limit=f"{int(limits.memory_mb)}m",
                    memswap_limit=f"{int(limits.memory_mb)}m",
                    pids_limit=int(limits.pids),
                    nano_cpus=1_000_000_000,
                    read_only=True,
                    tmpfs={"/tmp": f"rw,nosuid,nodev,size={_limits_tmpfs_mb(limits)}m,mode=1777"},
                    volumes={str(workdir): {"bind": WORKSPACE, "mode": "rw"}},
                    cap_drop=["ALL"],
                    security_opt=["no-new-privileges"],
                    ulimits=ulimits,
                    stdin_open=False,
                    tty=False,
                    # a disk bound for the engine's log only (the runner already caps what it
                    # copies; k8s-file lines cost ~40 bytes of overhead each, hence the slack)
                    log_config={"Type": "k8s-file", "Config": {"max-size": str(log_max)}},
                )
                t0 = time.monotonic()
                container.start()
            except docker.errors.ImageNotFound as exc:
                raise SandboxError(f"sandbox image {image} not found: {exc}") from exc
            except docker.errors.APIError as exc:
                raise SandboxError(f"container engine refused the run: {exc}") from exc
            except requests.exceptions.RequestException as exc:
                raise SandboxError(f"container engine not reachable: {exc}") from exc
            try:
                status = container.wait(timeout=max(0.1, limits.timeout_s))
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                timed_out = True
                with contextlib.suppress(Exception):
                    container.kill()
                try:
                    status = container.wait(timeout=30)
                except Exception as exc:  # noqa: BLE001
                    raise SandboxError(f"container would not die after timeout kill: {exc}") from exc
            duration = time.monotonic() - t0
            if timed_out:
                duration = max(duration, limits.timeout_s)
            exit_code = status.get("StatusCode")
            bound = max(0, int(limits.output_bytes)) + len(TRUNCATION_MARKER.encode()) + 65536
            out = self._read_log(container, "stdout", bound)
            err = self._read_log(container, "stderr", bound)
        finally:
            if container is not None:
                self._remove(container)
        return self._result(exit_code, out, err, duration, timed_out, limits)

    def _result(self, exit_code, out: bytes, err: bytes, duration: float, timed_out: bool,
                limits: Limits, *, baseline: dict | None = None, with_trailer: bool = False):
        """The ``ExecResult`` (and, with ``with_trailer``, the runner's status trailer).
        ``baseline``: the cgroup counters before the run (a warm container's are cumulative)."""
        trailer = None
        idx = err.rfind(STATUS_MAGIC)
        if idx >= 0:
            with contextlib.suppress(ValueError):
                trailer = json.loads(err[idx + len(STATUS_MAGIC):].split(b"\n", 1)[0])
            err = err[:idx]
        events = dict(trailer or {})
        for k in ("oom_kill", "pids_max_events"):
            if events.get(k) is not None and (baseline or {}).get(k) is not None:
                events[k] -= baseline[k]
        marker = TRUNCATION_MARKER.encode()
        # bound what we keep even if the runner was killed mid-copy (logs are already capped)
        cap = max(0, int(limits.output_bytes))
        stdout_trunc = out.endswith(marker) or marker in out[cap:] or len(out) > cap + len(marker)
        stderr_trunc = err.endswith(marker) or marker in err[cap:] or len(err) > cap + len(marker)
        out = out[: cap + len(marker)]
        err = err[: cap + len(marker)]
        killed_by = None
        if timed_out:
            killed_by = KILLED_TIMEOUT
            exit_code = exit_code if exit_code not in (None, -1) else None
        elif trailer is not None:
            sig = trailer.get("signal")
            cpu = trailer.get("cpu_s") or 0.0
            if events.get("oom_kill") and exit_code != 0:
                killed_by = KILLED_MEMORY
            elif sig == signal.SIGXCPU:
                killed_by = KILLED_CPU
            elif sig == signal.SIGXFSZ:
                killed_by = KILLED_FILE_SIZE
            elif sig == signal.SIGKILL:
                if limits.cpu_seconds and cpu >= limits.cpu_seconds - 0.5:
                    killed_by = KILLED_CPU
                else:
                    # Podman reports OOMKilled=False; a SIGKILL nobody else sent is the OOM killer.
                    killed_by = KILLED_MEMORY
            elif exit_code not in (0, None) and events.get("pids_max_events"):
                killed_by = KILLED_PIDS
            elif exit_code not in (0, None) and b"MemoryError" in err[-4096:]:
                killed_by = KILLED_MEMORY  # hit RLIMIT_DATA (the memory limit) before the cgroup
        elif exit_code == 137:
            # the runner itself was killed: the container's OOM killer (not our timeout kill)
            killed_by = KILLED_MEMORY
        result = ExecResult(
            exit_code=exit_code,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            duration_s=round(duration, 3),
            timed_out=timed_out,
            killed_by=killed_by,
            stdout_truncated=bool(stdout_trunc),
            stderr_truncated=bool(stderr_trunc),
            backend=self.name,
        )
        return (result, trailer) if with_trailer else result

    @staticmethod
    def _read_log(container, stream: str, bound: int) -> bytes:
        """At most ``bound`` bytes of one stream of the container's log, streamed."""
        chunks: list[bytes] = []
        size = 0
        gen = container.logs(stdout=stream == "stdout", stderr=stream == "stderr", stream=True, follow=False)
        try:
            for chunk in gen:
                chunks.append(chunk)
                size += len(chunk)
                if size > bound:
                    break
        finally:
            with contextlib.suppress(Exception):
                gen.close()
        data = b"".join(chunks)
        return data[:bound] if size > bound else data

    def _remove(self, container) -> None:
        last = None
        for _ in range(5):
            try:
                container.remove(force=True, v=True)
                return
            except Exception as exc:  # noqa: BLE001
                if getattr(exc, "status_code", None) == 404:
                    return
                last = exc
                time.sleep(0.5)
        log.error("could not remove sandbox container %s: %s", getattr(container, "id", "?"), last)

    def cleanup_containers(self) -> int:
        """Remove every container labelled as ours (e.g. left behind by a crashed worker)."""
        removed = 0
        for c in self.client.containers.list(all=True, filters={"label": f"{LABEL}=1"}):
            self._remove(c)
            removed += 1
        return removed

    # ---- workspace ownership: uid 65534 must be able to write it
    @staticmethod
    def _prepare_workdir(workdir: Path):
        """Make ``workdir`` writable for the sandbox uid; return a callable restoring owners."""
        if os.geteuid() != 0:
            for dirpath, dirnames, filenames in os.walk(workdir):
                for name in [*dirnames, *filenames, None]:
                    p = os.path.join(dirpath, name) if name else dirpath
                    with contextlib.suppress(OSError):
                        st = os.lstat(p)
                        if not stat.S_ISLNK(st.st_mode):
                            extra = 0o777 if stat.S_ISDIR(st.st_mode) else 0o666
                            os.chmod(p, st.st_mode | extra)
            return lambda: None
        owners: dict[str, tuple[int, int]] = {}
        top = os.lstat(workdir)
        for dirpath, dirnames, filenames in os.walk(workdir):
            for name in [*dirnames, *filenames, None]:
                p = os.path.join(dirpath, name) if name else dirpath
                with contextlib.suppress(OSError):
                    st = os.lstat(p)
                    owners[p] = (st.st_uid, st.st_gid)
                    os.lchown(p, SANDBOX_UID, SANDBOX_GID)

        def restore() -> None:
            for dirpath, dirnames, filenames in os.walk(workdir):
                for name in [*dirnames, *filenames, None]:
                    p = os.path.join(dirpath, name) if name else dirpath
                    uid, gid = owners.get(p, (top.st_uid, top.st_gid))
                    with contextlib.suppress(OSError):
                        os.lchown(p, uid, gid)

        return restore
