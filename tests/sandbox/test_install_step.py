"""A repository's install step (``EnvironmentSpec.setup_command``) in the real sandbox.

Real git repositories made here, real builds (gcc for a C extension, make for a generated
module) on the local bubblewrap backend, then the repository's own tests run with
``python -m pytest`` in a *fresh* checkout: the build outputs reach it from the environment
(artifacts.py) while the repository's code itself never lives there (the leak check holds).
The Docker variant runs where test_docker_backend.py's tests run (its fixtures, its skips).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest

from episodes.engine.sandbox import EnvironmentSpec, Limits, SandboxError
from episodes.engine.sandbox.local import ENV_MARKER
from episodes.engine.validate.validator import RepoSpec, Validator
from episodes.engine.git.workspace import WorkspaceFactory, git

from .test_docker_backend import docker_url, dx  # noqa: F401  (the Docker suite's fixtures)

RUN = Limits(timeout_s=120, memory_mb=1024, pids=128, output_bytes=200_000)

FASTMATH = {
    "setup.py": """\
        from setuptools import Extension, setup

        setup(name="fastmath", packages=["fastmath"],
              ext_modules=[Extension("fastmath._speed", ["fastmath/_speed.c"])])
        """,
    "fastmath/__init__.py": "from fastmath._speed import add\n",
    "fastmath/_speed.c": """\
        #define PY_SSIZE_T_CLEAN
        #include <Python.h>

        static PyObject *add(PyObject *self, PyObject *args) {
            long a, b;
            if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
            return PyLong_FromLong(a + b);
        }
        static PyMethodDef methods[] = {{"add", add, METH_VARARGS, ""}, {NULL, NULL, 0, NULL}};
        static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speed", NULL, -1, methods};
        PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&module); }
        """,
    "tests/test_fastmath.py": """\
        import fastmath
        from fastmath import _speed


        def test_add():
            assert fastmath.add(2, 3) == 5


        def test_extension_comes_from_the_environment():
            assert _speed.__file__.endswith(".so") and "/bugforge-artifacts/" in _speed.__file__
        """,
}

# `make` writes pkg/_generated.py, and rewrites pkg/shadow.py (tracked): the workspace's wins.
GENERATED = {
    "Makefile": "all:\n\techo 'VALUE = 42' > pkg/_generated.py\n\techo 'WHO = \"build\"' > pkg/shadow.py\n",
    "pkg/__init__.py": "",
    "pkg/core.py": "from ._generated import VALUE\n\n\ndef answer():\n    return VALUE\n",
    "pkg/shadow.py": 'WHO = "workspace"\n',
    "tests/test_pkg.py": """\
        from pkg import _generated, shadow
        from pkg.core import answer


        def test_generated():
            assert answer() == 42 and "/bugforge-artifacts/" in _generated.__file__


        def test_workspace_wins():
            assert shadow.WHO == "workspace"
        """,
}


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:  # CI installs them: a missing compiler must not pass as a skip
        pytest.fail(f"{', '.join(missing)} not installed: the install-step tests need them "
                    "(apt-get install build-essential)")


def _git_repo(path: Path, files: dict[str, str]) -> str:
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(textwrap.dedent(text))
    run = lambda *a: subprocess.run(["git", *a], cwd=path, check=True, capture_output=True)  # noqa: E731
    run("init", "-q", "-b", "main")
    run("add", "-A")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return git("rev-parse", "HEAD", cwd=path).strip()


class Repo:
    """A git repository made in the test, its mirror and a way to build/run it."""

    def __init__(self, base: Path, files: dict[str, str]):
        self.factory = WorkspaceFactory(base / f"wf-{uuid.uuid4().hex[:8]}")
        origin = base / f"origin-{uuid.uuid4().hex[:8]}"
        origin.mkdir()
        self.commit = _git_repo(origin, files)
        self.mirror = self.factory.ensure_mirror(str(origin), self.commit)

    def spec(self, setup_command: str, name: str = "repo") -> EnvironmentSpec:
        with self.factory.checkout(self.mirror, self.commit) as src:
            tree = git("rev-parse", "HEAD^{tree}", cwd=src).strip()
        return EnvironmentSpec(name=name, setup_command=setup_command, source_tree=tree)

    def build(self, executor, spec: EnvironmentSpec) -> str:
        with self.factory.checkout(self.mirror, self.commit) as src:
            assert src.stat().st_mode & 0o777 == 0o700  # as in production: what broke the copy
            return executor.ensure_environment(spec, src)

    def run(self, executor, env: str, argv: list[str]):
        """``argv`` in a fresh checkout (a run's workspace: no build outputs in it)."""
        with self.factory.checkout(self.mirror, self.commit) as ws:
            return executor.run(argv, ws, environment=env, limits=RUN)

    def pytest(self, executor, env: str):
        return self.run(executor, env, ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"])

    def assert_no_leak(self, executor, env: str, name: str) -> None:
        """The Validator's own check passes, and an empty folder imports neither the package
        nor its built submodule (only workspace packages get the build outputs)."""
        with self.factory.checkout(self.mirror, self.commit) as ws:
            Validator(executor, self.factory, RUN).check_environment(
                RepoSpec(self.mirror, self.commit, environment=env), ws)
        empty = self.factory.workspaces / f"empty-{uuid.uuid4().hex[:8]}"
        empty.mkdir(mode=0o755)
        try:
            for module in (name, f"{name}._speed", f"{name}._generated"):
                res = executor.run(["python", "-I", "-c", f"import {module}"], empty,
                                   environment=env, limits=RUN)
                assert res.exit_code == 1 and "ModuleNotFoundError" in res.stderr, (module, res)
        finally:
            shutil.rmtree(empty, ignore_errors=True)


def _marker(executor, env: str) -> dict:
    return json.loads((executor.environment_path(env) / ENV_MARKER).read_text())


# ---------------------------------------------------------------------------- local backend
def test_c_extension_built_by_the_install_step(local_executor, sandbox_base):
    _need("gcc")
    repo = Repo(sandbox_base, FASTMATH)
    env = repo.build(local_executor, repo.spec("python setup.py build_ext --inplace", "fastmath"))
    res = repo.pytest(local_executor, env)
    assert res.ok and "2 passed" in res.stdout, res
    built = _marker(local_executor, env)["artifacts"]
    assert [a for a in built if a.startswith("fastmath/_speed.") and a.endswith(".so")], built
    assert not any(a.startswith("build/") for a in built)  # compiler leftovers are not kept
    repo.assert_no_leak(local_executor, env, "fastmath")


def test_module_generated_by_make(local_executor, sandbox_base):
    _need("make")
    repo = Repo(sandbox_base, GENERATED)
    env = repo.build(local_executor, repo.spec("make", "generated"))
    res = repo.pytest(local_executor, env)
    assert res.ok and "2 passed" in res.stdout, res
    # the rewritten tracked file is not kept: its copy would be clean source an agent could read
    assert _marker(local_executor, env)["artifacts"] == ["pkg/_generated.py"]
    repo.assert_no_leak(local_executor, env, "pkg")


def test_trivial_install_command_runs(local_executor, sandbox_base):
    """The reported bug: even `true` failed (bwrap could not chdir into the 0700 copy)."""
    repo = Repo(sandbox_base, {"pkg/__init__.py": "", "pkg/data.txt": "x\n"})
    spec = repo.spec("true && touch pkg/made_by_setup.py && test -w pkg/data.txt")
    env = repo.build(local_executor, spec)
    assert env == spec.key
    assert _marker(local_executor, env)["artifacts"] == ["pkg/made_by_setup.py"]  # ran in the copy


def test_failing_install_command_says_why(local_executor, sandbox_base):
    repo = Repo(sandbox_base, {"pkg/__init__.py": ""})
    spec = repo.spec("echo compiling-broke-here >&2; exit 3", "broken")
    with pytest.raises(SandboxError, match=r"(?s)'broken' failed \(exit 3.*compiling-broke-here"):
        repo.build(local_executor, spec)
    assert not local_executor.environment_path(spec.key).exists()


def test_same_content_shares_one_environment(local_executor, sandbox_base):
    repo = Repo(sandbox_base, {"pkg/__init__.py": ""})
    first = repo.spec("touch built-once", "one-name")
    second = repo.spec("touch built-once", "another-name")
    assert first.key == second.key and first.key.startswith("env-") and first.name not in first.key
    assert repo.spec("touch built-once").key != EnvironmentSpec("x", setup_command="touch built-once").key
    env = repo.build(local_executor, first)
    marker = local_executor.environment_path(env) / ENV_MARKER
    built = marker.stat().st_mtime_ns, marker.stat().st_ino
    assert repo.build(local_executor, second) == env
    assert (marker.stat().st_mtime_ns, marker.stat().st_ino) == built  # not built again


# ---------------------------------------------------------------------------- docker backend
def test_docker_install_step_outputs_reach_the_workspace(dx, sandbox_base):  # noqa: F811
    """The image has no compiler or make: a Python step generates the module here."""
    files = {**GENERATED, "gen.py": "open('pkg/_generated.py', 'w').write('VALUE = 42\\n')\n"
             "open('pkg/shadow.py', 'w').write('WHO = \"build\"\\n')\n"}
    del files["Makefile"]
    repo = Repo(sandbox_base, files)
    env = repo.build(dx, repo.spec("python gen.py"))
    try:
        res = repo.pytest(dx, env)
        assert res.ok and "2 passed" in res.stdout, res
        repo.assert_no_leak(dx, env, "pkg")
        with pytest.raises(SandboxError, match="compiling-broke-here"):
            repo.build(dx, repo.spec("echo compiling-broke-here; exit 3"))
    finally:
        dx.close_warm()  # the warm container holds the image
        dx.client.images.remove(env, force=True)


def test_docker_trivial_install_command(dx, sandbox_base):  # noqa: F811
    repo = Repo(sandbox_base, {"pkg/__init__.py": ""})
    env = repo.build(dx, repo.spec("true"))
    try:
        assert repo.run(dx, env, ["python", "-c", "import pkg"]).ok
    finally:
        dx.close_warm()
        dx.client.images.remove(env, force=True)
