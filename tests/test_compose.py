"""The container deployment: Dockerfile, docker-compose.yml and .dockerignore, checked by parsing
them (no Docker engine needed), plus the production settings under `check --deploy`."""
import os
import re
import secrets
import shlex
import string
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SETTINGS = ROOT / "bugforge_web" / "settings.py"

APP_SERVICES = ("migrate", "web", "gateway", "worker", "trainer")
# Variables a service may set that settings.py does not read, with who reads them.
PROCESS_ENV = {"WEB_CONCURRENCY": "gunicorn's worker count"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def interpolate(value) -> str:
    """Compose-style ${VAR}, ${VAR:-default} and ${VAR:?error}, resolved as if VAR were unset
    (defaults win; a required variable becomes a placeholder)."""

    def sub(m):
        op, arg = m.group(2), m.group(3)
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            return f"<required:{m.group(1)}>"
        return ""

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", sub, str(value))


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...] form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: interpolate(v) for k, v in env.items()}


def argv(command) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def settings_env_names() -> set[str]:
    """Every variable settings.py reads through django-environ: env("X"), env.bool("X"), ..."""
    names = set(re.findall(r"\benv(?:\.\w+)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']", SETTINGS.read_text()))
    assert {"DATABASE_URL", "SECRET_KEY", "DEBUG", "REDIS_URL"} <= names, names  # the regex works
    return names


# --------------------------------------------------------------------------- compose file
def test_compose_spec_services(compose, services):
    assert "version" not in compose  # the compose spec dropped it
    for name in ("postgres", "redis", *APP_SERVICES):
        assert name in services, f"missing service {name}"
    assert services["postgres"]["image"].split(":")[0] == "postgres"
    assert services["postgres"]["image"].split(":")[1].startswith("16")
    assert services["redis"]["image"].split(":")[1].startswith("7")
    # postgres keeps its data in a named volume
    named = set(compose.get("volumes") or {})
    pg_volumes = [v.split(":")[0] for v in services["postgres"]["volumes"]]
    assert any(v in named for v in pg_volumes), pg_volumes


def test_healthchecks(services):
    pg = " ".join(argv(services["postgres"]["healthcheck"]["test"]))
    assert "pg_isready" in pg
    redis = " ".join(argv(services["redis"]["healthcheck"]["test"]))
    assert "redis-cli" in redis and "ping" in redis


def test_web_runs_gunicorn_on_port_8000(services):
    web = services["web"]
    cmd = argv(web["command"])
    assert cmd[0] == "gunicorn"
    assert any(a.split(":")[0] == "bugforge_web.wsgi" for a in cmd), cmd
    assert "0.0.0.0:8000" in cmd or "--bind=0.0.0.0:8000" in cmd, cmd
    assert any(interpolate(p).split(":")[-1] == "8000" for p in web["ports"]), web["ports"]


def test_web_waits_for_healthy_backends_and_migrations(services):
    deps = services["web"]["depends_on"]
    assert deps["postgres"]["condition"] == "service_healthy"
    assert deps["redis"]["condition"] == "service_healthy"
    assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_migrate_is_one_shot(services):
    migrate = services["migrate"]
    assert argv(migrate["command"])[:3] == ["python", "manage.py", "migrate"]
    assert str(migrate.get("restart", "no")) == "no"


def rq_queues(service: dict) -> list[str]:
    cmd = argv(service["command"])
    assert cmd[:3] == ["python", "manage.py", "rqworker"], cmd
    return [a for a in cmd[3:] if not a.startswith("-")]


def test_worker_and_trainer_queues(services):
    assert sorted(rq_queues(services["worker"])) == ["inject", "solve", "verify"]
    assert rq_queues(services["trainer"]) == ["train"]


def test_worker_is_scalable(services):
    worker = services["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert "hostname" not in worker


def test_worker_can_run_the_local_sandbox(services):
    worker = services["worker"]
    assert {"seccomp=unconfined", "apparmor=unconfined"} <= set(worker["security_opt"])
    assert "SYS_ADMIN" in worker["cap_add"]
    assert env_of(worker)["BUGFORGE_SANDBOX"] in ("local", "docker")
    # the work dir is a volume, so environments and mirrors survive restarts
    assert any(v.split(":")[1] == "/var/lib/bugforge/work" for v in worker["volumes"]), worker["volumes"]
    # the docker backend is offered as a commented alternative
    text = COMPOSE.read_text()
    assert re.search(r"#\s*BUGFORGE_SANDBOX:\s*docker", text)
    assert re.search(r"#\s*-\s*/var/run/docker.sock:/var/run/docker.sock", text)


def test_trainer_reserves_an_nvidia_gpu(services):
    devices = services["trainer"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) and d.get("count") == 1
        for d in devices
    ), devices
    assert "deploy" not in services["worker"]  # CPU workers take no GPU


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_the_production_env(services, name):
    env = env_of(services[name])
    for key in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "BUGFORGE_WORK_DIR"):
        assert key in env, f"{name} lacks {key}"
    assert env["DEBUG"].lower() == "false"
    assert env["SECRET_KEY"] == "<required:SECRET_KEY>"  # ${SECRET_KEY:?...}: no baked-in key
    db = urlsplit(env["DATABASE_URL"])
    assert db.scheme in ("postgres", "postgresql", "pgsql") and db.hostname == "postgres", env["DATABASE_URL"]
    assert db.port == 5432 and db.path == "/bugforge"
    redis = urlsplit(env["REDIS_URL"])
    assert redis.scheme == "redis" and redis.hostname == "redis", env["REDIS_URL"]


def test_database_credentials_match_postgres_service(services):
    pg = env_of(services["postgres"])
    db = urlsplit(env_of(services["web"])["DATABASE_URL"])
    assert (db.username, db.password, db.path.lstrip("/")) == (
        pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"],
    )
    # both sides take the password from the same variable
    assert "${POSTGRES_PASSWORD" in services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert "${POSTGRES_PASSWORD" in services["web"]["environment"]["DATABASE_URL"]


def test_shared_env_anchor(compose):
    assert "x-bugforge-env" in compose
    shared = {k: interpolate(v) for k, v in compose["x-bugforge-env"].items()}
    assert shared["SECURE_SSL_REDIRECT"] == "false"  # TLS terminates at the proxy by default
    assert shared["ALLOWED_HOSTS"] == "localhost"


def test_compose_sets_only_variables_settings_reads(compose, services):
    known = settings_env_names()
    assert set(compose["x-bugforge-env"]) <= known, set(compose["x-bugforge-env"]) - known
    for name in APP_SERVICES:
        unknown = set(env_of(services[name])) - known - set(PROCESS_ENV)
        assert not unknown, f"{name} sets variables settings.py never reads: {sorted(unknown)}"
    # the commented docker-backend variables must be real settings too
    commented = set(re.findall(r"#\s*(BUGFORGE_[A-Z_]+):", COMPOSE.read_text()))
    assert commented <= known, commented - known


def test_work_dir_matches_image(compose, services):
    shared = compose["x-bugforge-env"]["BUGFORGE_WORK_DIR"]
    assert re.search(rf"^ENV BUGFORGE_WORK_DIR={re.escape(shared)}\b", DOCKERFILE.read_text(), re.M)
    assert any(v == f"work:{shared}" for v in services["trainer"]["volumes"])


# --------------------------------------------------------------------------- Dockerfile
def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())  # join continuation lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_base_and_packages():
    ins = dockerfile_instructions()
    froms = [rest for op, rest in ins if op == "FROM"]
    assert froms and re.match(r"python:3\.11[.\-\w]*", froms[-1]), froms
    runs = " ".join(rest for op, rest in ins if op == "RUN")
    assert "apt-get install" in runs and " git " in f" {runs} " and "bubblewrap" in runs
    assert re.search(r"pip install [^&]*-r requirements\.txt", runs), runs
    assert "collectstatic" in runs and "DEBUG=false" in runs
    copies = [rest for op, rest in ins if op == "COPY"]
    assert any("requirements.txt" in c for c in copies)


def test_dockerfile_runs_gunicorn_as_non_root():
    ins = dockerfile_instructions()
    users = [rest for op, rest in ins if op == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0"), users
    assert ("EXPOSE", "8000") in ins
    cmd = " ".join(rest for op, rest in ins if op in ("CMD", "ENTRYPOINT"))
    assert "gunicorn" in cmd and "bugforge_web.wsgi" in cmd and "0.0.0.0:8000" in cmd, cmd
    envs = " ".join(rest for op, rest in ins if op == "ENV")
    assert "WEB_CONCURRENCY=" in envs  # gunicorn takes its worker count from it


def test_dockerignore_keeps_secrets_and_state_out():
    patterns = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    for p in (".git", ".venv", "var", ".env", "staticfiles"):
        assert p in patterns, f".dockerignore should exclude {p}"


# --------------------------------------------------------------------------- settings
def _production_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in settings_env_names()}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser tests; never in production
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    env.update(
        DEBUG="false",
        SECRET_KEY="".join(secrets.choice(alphabet) for _ in range(50)),
        ALLOWED_HOSTS="bugforge.example",
        DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}",
        BUGFORGE_VAR_DIR=str(tmp_path / "var"),
        STATIC_ROOT=str(tmp_path / "static"),
    )
    return env


def test_production_settings_pass_check_deploy(tmp_path):
    proc = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=_production_env(tmp_path), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif((ROOT / ".env").exists(), reason="a local .env may supply SECRET_KEY")
def test_production_settings_refuse_to_start_without_secret_key(tmp_path):
    env = _production_env(tmp_path)
    del env["SECRET_KEY"]
    proc = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0 and "SECRET_KEY" in proc.stderr
