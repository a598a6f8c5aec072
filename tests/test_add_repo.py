"""Bringing your own repository in (``manage.py add_repo`` and the Add repository page), with real
git repositories made here and the real sandbox: refs pinned to 40-hex, the environment inferred
(dependencies, an install step), failing and hanging tests at baseline, clear reasons when a
repository is not usable, many at once, re-pinning and removal, and a first validated batch."""
import io
import subprocess
import textwrap
from pathlib import Path

import django_rq
import pytest
from django.core.management import CommandError, call_command
from rq import SimpleWorker

from episodes.models import AuditEvent, Bug, InjectionBatch, Repository

pytestmark = pytest.mark.django_db

CLAMP = textwrap.dedent("""\
    def clamp(x, lo, hi):
        if x < lo:
            return lo
        if x > hi:
            return hi
        return x


    def sign(x):
        if x > 0:
            return 1
        if x < 0:
            return -1
        return 0
    """)
CLAMP_TESTS = textwrap.dedent("""\
    from mathlib import clamp, sign


    def test_low():
        assert clamp(-1, 0, 5) == 0


    def test_high():
        assert clamp(9, 0, 5) == 5


    def test_inside():
        assert clamp(3, 0, 5) == 3


    def test_sign():
        assert [sign(-4), sign(0), sign(7)] == [-1, 0, 1]


    class TestBase:
        def test_clamp_is_idempotent(self):
            assert clamp(clamp(9, 0, 5), 0, 5) == 5


    class TestInherited(TestBase):  # runs TestBase's test again, as its own node id
        pass
    """)


def make_git(root: Path, files: dict[str, str], branch: str = "main") -> str:
    """A git repository at ``root`` holding ``files``; returns the commit."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=root,  # noqa: E731
                                    check=True, capture_output=True, text=True).stdout.strip()
    if not (root / ".git").exists():
        git("init", "-q", "-b", branch)
    git("add", "-A")
    git("commit", "-qm", "commit")
    return git("rev-parse", "HEAD")


def add_repo(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("add_repo", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), f"{err.getvalue()}\nCommandError: {exc}"
    return out.getvalue(), err.getvalue()


@pytest.fixture
def origin(sandbox_settings):
    return sandbox_settings.BUGFORGE_WORK_DIR / "origins"


def test_a_plain_repository_at_a_branch_is_pinned_and_gets_a_first_batch(origin, settings):
    commit = make_git(origin / "mathlib", {
        "mathlib.py": CLAMP, "tests/test_mathlib.py": CLAMP_TESTS,
        "pyproject.toml": '[project]\nname = "mathlib"\nversion = "1"\n[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
    })
    out, err = add_repo(str(origin / "mathlib"), "--ref", "main", "--inject", "4")
    repo = Repository.objects.get(name="mathlib")
    assert repo.status == "ready", (out, err, repo.error)
    assert repo.pinned_commit == commit and repo.ref == "main"  # the branch resolved, the commit stored
    assert repo.baseline_counts == {"passed": 6, "failed": 0, "error": 0, "skipped": 0}
    assert "6 found, 6 passing, 0 failing" in out and "pyproject.toml" in out
    # the inherited test maps to the class that ran it: both node ids cover clamp's lines
    cmap = repo.coverage
    ran = {cmap["tests"][i] for entries in cmap["lines"]["mathlib.py"].values() for i in cmap["sets"][entries]}
    assert {"tests/test_mathlib.py::TestBase::test_clamp_is_idempotent",
            "tests/test_mathlib.py::TestInherited::test_clamp_is_idempotent"} <= ran
    batch = InjectionBatch.objects.get(repository=repo)
    assert batch.status == "done" and batch.produced == 4
    assert repo.bugs.filter(status="valid").exists(), list(repo.bugs.values_list("status", "invalid_reason"))
    assert all(b.base_commit == commit for b in repo.bugs.all())


def test_head_and_short_commits_are_stored_as_the_full_commit(origin):
    first = make_git(origin / "pinme", {"mathlib.py": CLAMP, "tests/test_mathlib.py": CLAMP_TESTS})
    add_repo(str(origin / "pinme"), "--ref", "HEAD", "--name", "pin-head")
    add_repo(str(origin / "pinme"), "--ref", first[:8], "--name", "pin-short")
    assert Repository.objects.get(name="pin-head").pinned_commit == first
    assert Repository.objects.get(name="pin-short").pinned_commit == first
    _, err = add_repo(str(origin / "pinme"), "--ref", "no-such-branch", "--name", "pin-bad")
    bad = Repository.objects.get(name="pin-bad")
    assert bad.status == "broken" and "'no-such-branch' is not a branch, tag or commit" in bad.error


def test_dependencies_are_inferred_and_failing_and_hanging_tests_left_out(origin, settings):
    settings.BUGFORGE_TEST_TIMEOUT = 3
    make_git(origin / "withdeps", {
        "mathlib.py": "import six\n\n" + CLAMP,
        "tests/test_mathlib.py": CLAMP_TESTS + textwrap.dedent("""\


            def test_six_is_there():
                import six
                assert six.PY3


            def test_broken_on_clean_code():
                assert clamp(1, 0, 5) == 2


            def test_hangs():
                import time
                time.sleep(3600)
            """),
        "requirements-test.txt": "six==1.17.0\n",
    })
    out, err = add_repo(str(origin / "withdeps"))
    repo = Repository.objects.get(name="withdeps")
    assert repo.status == "ready", (out, err, repo.error)
    assert "six==1.17.0" in repo.pip_packages
    assert any("requirements-test.txt" in r for r in repo.detected["reasons"])
    counts = repo.baseline_counts
    assert (counts["passed"], counts["failed"]) == (7, 2), repo.baseline_tests
    assert repo.baseline_tests["tests/test_mathlib.py::test_hangs"]["status"] == "failed"  # alone, not the run
    assert "2 test(s) fail on clean code and are left out" in repo.error
    assert "tests/test_mathlib.py::test_hangs" not in repo.coverage["tests"]


def test_a_c_extension_needs_its_install_step(origin):
    make_git(origin / "fastmath", {
        "setup.py": textwrap.dedent("""\
            from setuptools import Extension, setup
            setup(name="fastmath", version="1", packages=["fastmath"],
                  ext_modules=[Extension("fastmath._speed", ["fastmath/_speed.c"])])
            """),
        "fastmath/__init__.py": "from ._speed import twice\n\n\ndef quad(x):\n    if x < 0:\n        return -twice(twice(-x))\n"
                                "    return twice(twice(x))\n",
        "fastmath/_speed.c": textwrap.dedent("""\
            #include <Python.h>
            static PyObject *twice(PyObject *self, PyObject *arg) { return PyNumber_Add(arg, arg); }
            static PyMethodDef methods[] = {{"twice", twice, METH_O, ""}, {NULL, NULL, 0, NULL}};
            static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_speed", "", -1, methods};
            PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&mod); }
            """),
        "tests/test_fastmath.py": "from fastmath import quad\n\n\ndef test_quad():\n    assert quad(3) == 12\n\n\n"
                                  "def test_negative():\n    assert quad(-2) == -8\n",
    })
    out, err = add_repo(str(origin / "fastmath"))
    repo = Repository.objects.get(name="fastmath")
    assert repo.install_command, repo.detected  # inferred from ext_modules
    assert repo.status == "ready", (out, err, repo.error)
    assert repo.baseline_counts["passed"] == 2
    assert "fastmath/__init__.py" in repo.coverage["lines"]


def test_unusable_repositories_say_why_and_what_to_change(origin, settings):
    make_git(origin / "onetest", {"mathlib.py": CLAMP, "tests/test_one.py": "def test_one():\n    assert True\n"})
    out, err = add_repo(str(origin / "onetest"))
    repo = Repository.objects.get(name="onetest")
    assert repo.status == "broken" and "BUGFORGE_MIN_PASSING_TESTS" in repo.error
    assert "is not ready" in err
    # a test command that is not pytest ran no session: it says so, it is not "ready" with no map
    out, err = add_repo(str(origin / "onetest"), "--name", "nopytest", "--test-command", "python -c pass")
    assert "ran no pytest session" in Repository.objects.get(name="nopytest").error
    # not a git repository: refused before anything is stored
    (origin / "plain").mkdir()
    _, err = add_repo(str(origin / "plain"))
    assert "not a git repository" in err and not Repository.objects.filter(source=str(origin / "plain")).exists()


def test_many_at_once_repin_and_remove(origin, settings):
    make_git(origin / "one", {"mathlib.py": CLAMP, "tests/test_mathlib.py": CLAMP_TESTS})
    make_git(origin / "two", {"mathlib.py": CLAMP, "tests/test_mathlib.py": CLAMP_TESTS})
    spec = origin / "repos.txt"
    spec.write_text(f"# two libraries\n{origin / 'one'} main name=lib-one\n{origin / 'two'} test_command='python -m pytest tests'\n")
    out, _ = add_repo("--from", str(spec))
    assert [line.split()[:2] for line in out.splitlines() if line.startswith(("lib-one ", "two "))] == [
        ["lib-one", "ready"], ["two", "ready"]]
    two = Repository.objects.get(name="two")
    assert two.test_command == "python -m pytest tests" and two.overridden == ["test_command"]

    one = Repository.objects.get(name="lib-one")
    old = one.pinned_commit
    new_commit = make_git(origin / "one", {"mathlib.py": CLAMP + "\n\ndef double(x):\n    return 2 * x\n"})
    out = io.StringIO()
    call_command("repin", "lib-one", stdout=out)
    pinned = Repository.objects.get(previous_pin=one)
    assert pinned.pinned_commit == new_commit and pinned.status == "ready" and one.pinned_commit == old
    with pytest.raises(CommandError, match="already pinned"):
        call_command("repin", "lib-one", stdout=io.StringIO())
    call_command("remove_repo", "lib-one", stdout=io.StringIO())
    one.refresh_from_db()
    assert one.archived_at is not None and one.pinned_commit == old


def burst():
    SimpleWorker([django_rq.get_queue(q) for q in ("verify", "inject")], connection=django_rq.get_connection("verify")).work(burst=True)


@pytest.mark.django_db(transaction=True)
def test_the_add_repository_page(origin, staff_client, reviewer_client, redis_conn):
    commit = make_git(origin / "pagelib", {"mathlib.py": CLAMP, "tests/test_mathlib.py": CLAMP_TESTS})
    page = staff_client.get("/repositories/new/")
    assert page.status_code == 200 and b'name="source"' in page.content
    assert reviewer_client.post("/repositories/add/", {"source": str(origin / "pagelib")}).status_code == 403
    bad = staff_client.post("/repositories/add/", {"source": "relative/path"})
    assert bad.status_code == 400 and b"must be absolute" in bad.content

    response = staff_client.post("/repositories/add/", {"source": str(origin / "pagelib"), "ref": "main",
                                                        "pip_packages": "six==1.17.0", "first_batch": "2"})
    repo = Repository.objects.get(name="pagelib")
    assert response.status_code == 302 and response.url == repo.get_absolute_url()
    assert repo.status == "preparing" and repo.job_id and repo.overridden == ["pip_packages"]
    live = staff_client.get(f"/repositories/{repo.pk}/progress/")
    assert b"hx-trigger" in live.content  # polled while it runs
    burst()
    repo.refresh_from_db()
    assert repo.status == "ready" and repo.pinned_commit == commit, repo.error
    assert repo.pip_packages == ["six==1.17.0"]  # what the user set wins over the inference
    detail = staff_client.get(repo.get_absolute_url()).content.decode()
    assert "6 tests found: 6 passing" in detail and "passing test(s)" in detail and "set by you" in detail
    assert InjectionBatch.objects.get(repository=repo).produced == 2
    listing = staff_client.get("/repositories/").content.decode()
    assert "pagelib" in listing and commit[:12] in listing and "6/6" in listing
    assert AuditEvent.objects.filter(action="add_repository").exists()

    assert staff_client.post(f"/repositories/{repo.pk}/archive/").status_code == 302
    assert f'href="{repo.get_absolute_url()}"' not in staff_client.get("/repositories/").content.decode()
    assert f'href="{repo.get_absolute_url()}"' in staff_client.get("/repositories/?archived=1").content.decode()
    refused = staff_client.post(f"/repositories/{repo.pk}/inject/", {"method": "procedural", "count": "2"}, follow=True)
    assert b"removed from use" in refused.content and InjectionBatch.objects.filter(repository=repo).count() == 1
    assert Bug.objects.filter(repository=repo).count() == 2  # its bugs stay
