"""Shared fixtures: users and clients, an isolated Redis database, and the sample repository
registered in a throwaway work directory with its baseline run in the real sandbox."""
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest


def pytest_configure(config):
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        # the xdist controller names the run before it starts its workers, so it can remove
        # the run's shared cache (tests/run_cache.py) at the end
        config.option.testrunuid = config.option.testrunuid or uuid.uuid4().hex
    # Tests get their own Redis database so a developer's queues are never touched.
    os.environ.setdefault("BUGFORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    os.environ["BUGFORGE_TEST_REDIS_URL"] = worker_redis_url(os.environ["BUGFORGE_TEST_REDIS_URL"],
                                                             os.environ.get("PYTEST_XDIST_WORKER", ""))
    # Validation stops at "stable at < 50%" (5 runs a side) unless a test asks for more:
    # the 59 runs a side of the 5% default are measured in bench/flake_recall.py.
    os.environ["BUGFORGE_FLAKE_TARGET"] = TEST_FLAKE_TARGET


TEST_FLAKE_TARGET = "0.5"


def pytest_unconfigure(config):
    from tests.run_cache import shared_dir

    if not hasattr(config, "workerinput") and (folder := shared_dir(getattr(config.option, "testrunuid", None))):
        shutil.rmtree(folder, ignore_errors=True)


def worker_redis_url(url: str, worker: str) -> str:
    """Parallel workers (pytest-xdist's gw0, gw1, …) count down from the given database
    (15, 14, …) so that no two share queues and a developer's database 0 is never reached."""
    if not worker:
        return url
    base, _, db = url.rpartition("/")
    index = int(db or 0) - int(worker.removeprefix("gw"))
    if index < 1:
        raise pytest.UsageError(f"too many test workers for Redis databases below {url}: use fewer (-n)")
    return f"{base}/{index}"


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path_factory):
    # django-rq reads RQ_QUEUES at call time, so this reaches every queue the code opens.
    settings.RQ_QUEUES = {
        name: {"URL": os.environ["BUGFORGE_TEST_REDIS_URL"], "DEFAULT_TIMEOUT": 600} for name in settings.QUEUE_NAMES
    }
    settings.BUGFORGE_FLAKE_TARGET = float(TEST_FLAKE_TARGET)
    yield


@pytest.fixture(scope="session")
def work_dir():
    """Sandbox work dir reachable by the sandbox uid (pytest's tmp_path is mode 700)."""
    base = Path(tempfile.mkdtemp(prefix="bugforge-test-", dir="/var/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def redis_conn(settings):
    import django_rq

    conn = django_rq.get_connection("verify")
    conn.flushdb()
    yield conn
    conn.flushdb()


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("staffer", password="pw-staff-123", is_staff=True)


@pytest.fixture
def reviewer(django_user_model):
    return django_user_model.objects.create_user("reviewer", password="pw-review-123")


@pytest.fixture
def staff_client(staff):
    from django.test import Client

    client = Client()  # not the shared `client`, so a test can hold both kinds of user
    client.force_login(staff)
    return client


@pytest.fixture
def reviewer_client(client, reviewer):
    client.force_login(reviewer)
    return client


@pytest.fixture
def sandbox_settings(settings, work_dir):
    from episodes import sandboxes

    settings.BUGFORGE_WORK_DIR = work_dir
    settings.BUGFORGE_SANDBOX = "local"
    settings.BUGFORGE_RUN_TIMEOUT = 60
    sandboxes.executor.cache_clear()
    sandboxes.workspaces.cache_clear()
    yield settings
    sandboxes.executor.cache_clear()
    sandboxes.workspaces.cache_clear()


@pytest.fixture(scope="session")
def sample_git(work_dir):
    """examples/cartcalc as a git repository (built once per session): (path, commit)."""
    from episodes.engine.repos.samples import build_sample_git_repo

    dest = work_dir / "sample-src" / "cartcalc"
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest, build_sample_git_repo(dest)


BASELINE_FIELDS = ("status", "error", "baseline_tests", "baseline_duration_s", "coverage", "baseline_at")


@pytest.fixture
def sample_repo(db, sandbox_settings, sample_git):
    """The sample repository row with its baseline recorded by the real sandbox, measured once a
    run (tests/run_cache.py) and copied into the rows of later tests."""
    from django.forms.models import model_to_dict

    from episodes.models import Repository, VerificationRun
    from episodes.validation.jobs import run_baseline
    from tests.run_cache import measured_once

    path, commit = sample_git

    def measure() -> dict:
        repo = Repository.objects.create(name="cartcalc", source=str(path), pinned_commit=commit)
        assert run_baseline(repo.pk) == "ready", Repository.objects.get(pk=repo.pk).error
        repo.refresh_from_db()
        baseline = {"fields": {name: getattr(repo, name) for name in BASELINE_FIELDS},
                    "runs": [model_to_dict(run, exclude=["id", "repository", "bug"])
                             for run in VerificationRun.objects.filter(repository=repo)]}
        repo.delete()
        return baseline

    baseline = measured_once(f"sample baseline {commit}", measure)
    repo = Repository.objects.create(name="cartcalc", source=str(path), pinned_commit=commit, **baseline["fields"])
    VerificationRun.objects.bulk_create(VerificationRun(repository=repo, **run) for run in baseline["runs"])
    return repo


@pytest.fixture
def approved_bug(sample_repo):
    """The shipping sample bug (sample 0) as an approved row, validated in the real sandbox once a session."""
    from tests.factories import add_sample_bug

    return add_sample_bug(sample_repo, 0)


@pytest.fixture(scope="session")
def engine_bug(work_dir, sample_git):
    """The shipping sample bug, validated (one run a side) so its FAIL_TO_PASS/PASS_TO_PASS are real.
    Built by `prepare_repo`, as `episodes.sandboxes.repo_spec` builds it, so Django tests reuse the build."""
    from tests.factories import SHIPPING, EngineBug

    from episodes.engine.git.workspace import WorkspaceFactory
    from episodes.engine.repos.samples import sample_patch
    from episodes.engine.sandbox import Limits, make_executor
    from episodes.engine.validate.flakiness import StopRule
    from episodes.engine.validate.validator import BugSpec, Validator, prepare_repo

    path, commit = sample_git
    executor = make_executor("local", cache_dir=work_dir)
    workspaces = WorkspaceFactory(work_dir)
    repo = prepare_repo(executor, workspaces, str(path), commit, {"name": "cartcalc"})
    mirror = repo.mirror
    validator = Validator(executor, workspaces, Limits(timeout_s=60), flake=StopRule(target=0.99))  # one run a side
    record, _ = validator.baseline(repo, with_coverage=False)
    repo.baseline = {t: {"status": s} for t, s in record.tests.items()}
    bug = BugSpec(sample_patch(workspaces, mirror, commit, SHIPPING), SHIPPING.verifier)
    verdict = validator.validate(repo, bug, seed=7)
    assert verdict.status == "valid", verdict.reason
    return EngineBug(executor, workspaces, repo, bug, verdict.fail_to_pass, verdict.pass_to_pass, SHIPPING)
