"""BugForge settings, read from the environment (12-factor).

Embedded default: a SQLite file under var/ (WAL mode) and Redis on localhost. Production:
set DEBUG=false, SECRET_KEY, ALLOWED_HOSTS and DATABASE_URL=postgres://... (psycopg 3).
"""
import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)  # optional; absent is fine

VAR_DIR = Path(env("BUGFORGE_VAR_DIR", default=str(BASE_DIR / "var")))
# Each parallel test worker (pytest-xdist sets PYTEST_XDIST_WORKER, also for the processes a test
# starts) has its own database, so it needs its own var dir: run folders are named by primary key.
if xdist_worker := env("PYTEST_XDIST_WORKER", default=""):
    VAR_DIR = VAR_DIR / xdist_worker
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=True)


def _secret_key() -> str:
    """Required in production; in development, generated once and kept under var/."""
    key = env("SECRET_KEY", default="")
    if key:
        return key
    if not DEBUG:
        raise environ.ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false")
    from django.core.management.utils import get_random_secret_key

    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(get_random_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_rq",
    "episodes",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "bugforge_web.middleware.RejectNulBytes",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",  # every page needs a login
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "bugforge_web.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
WSGI_APPLICATION = "bugforge_web.wsgi.application"
ASGI_APPLICATION = "bugforge_web.asgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'bugforge.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while a worker writes; a busy timeout instead of
    # "database is locked" errors when two processes write at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
    # A file, not :memory:, so a worker process started by a test sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
# One queue per kind of work so each host runs only the workers it is fit for:
# CPU hosts take inject/verify/solve, GPU hosts take train.
QUEUE_NAMES = ("inject", "verify", "solve", "train")
RQ_QUEUES = {name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 3600} for name in QUEUE_NAMES}
RQ_QUEUES["train"]["DEFAULT_TIMEOUT"] = 7 * 24 * 3600
RQ_SHOW_ADMIN_LINK = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
import plotly as _plotly  # noqa: E402  (plotly.min.js ships in the wheel: serve it, no CDN)

STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", Path(_plotly.__file__).parent / "package_data")]
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Sandboxes: where environments and workspaces live (must be reachable by the sandbox uid,
# so not under /root), which backend runs untrusted code, and the default limits.
BUGFORGE_WORK_DIR = Path(env("BUGFORGE_WORK_DIR", default="/var/tmp/bugforge"))
BUGFORGE_SANDBOX = env("BUGFORGE_SANDBOX", default="local")  # "local" or "docker"
BUGFORGE_DOCKER_URL = env("BUGFORGE_DOCKER_URL", default="")
# Docker backend: reuse a warm container per environment (False: one fresh container per run).
BUGFORGE_DOCKER_WARM = env.bool("BUGFORGE_DOCKER_WARM", default=True)
BUGFORGE_RUN_TIMEOUT = env.float("BUGFORGE_RUN_TIMEOUT", default=120.0)  # cap per sandboxed run
# Once a repository has a baseline, a run may take 10× its suite's time, but at least this.
BUGFORGE_MIN_RUN_TIMEOUT = env.float("BUGFORGE_MIN_RUN_TIMEOUT", default=15.0)
# The clean suite's baseline run (under coverage) may take this long.
BUGFORGE_BASELINE_TIMEOUT = env.float("BUGFORGE_BASELINE_TIMEOUT", default=1800.0)
# A single test of a suite run that runs longer fails alone (the run goes on); 0: no limit.
BUGFORGE_TEST_TIMEOUT = env.float("BUGFORGE_TEST_TIMEOUT", default=60.0)
# "covering": a candidate's suite run is only the tests that execute its patched lines (the
# coverage map says which), "full": always the whole suite.
BUGFORGE_SUITE_SCOPE = env("BUGFORGE_SUITE_SCOPE", default="covering")
# Fernet keys for secrets at rest (model API keys), newest first; unset: derived from SECRET_KEY
# (bugforge_web/encryption.py; rotate with `manage.py rotate_field_keys`).
BUGFORGE_FIELD_KEYS = env.list("BUGFORGE_FIELD_KEYS", default=[])
# A repository needs this many passing tests at baseline to be ready (a bug needs one test that
# fails and one that still passes).
BUGFORGE_MIN_PASSING_TESTS = env.int("BUGFORGE_MIN_PASSING_TESTS", default=2)
# Validation reruns a verifier on clean and buggy code until the 95% upper bound on its flake
# rate is below this target on each side (59 runs a side at 5%) or a run disagrees; at most
# BUGFORGE_FLAKE_MAX_RUNS a side. RL datasets take only bugs stable at this target.
BUGFORGE_FLAKE_TARGET = env.float("BUGFORGE_FLAKE_TARGET", default=0.05)
BUGFORGE_FLAKE_MAX_RUNS = env.int("BUGFORGE_FLAKE_MAX_RUNS", default=200)
# Verifier runs of one bug in parallel (each in its own checkout).
BUGFORGE_VALIDATION_WORKERS = env.int("BUGFORGE_VALIDATION_WORKERS", default=max(1, min(4, (os.cpu_count() or 2) // 2)))
# Runs a side of a staff "Rerun verifier" (on top of what validation made).
BUGFORGE_FLAKY_RERUNS = env.int("BUGFORGE_FLAKY_RERUNS", default=5)
# A graded change the static screen flags: "refuse" (reward False) or "review" (graded, held for staff)
BUGFORGE_SUSPICIOUS_EPISODES = env("BUGFORGE_SUSPICIOUS_EPISODES", default="refuse")
# A validating bug whose job has not been heard from for this long is reset by the sweeper.
BUGFORGE_STALE_AFTER_S = env.int("BUGFORGE_STALE_AFTER_S", default=900)

# Recording gateway (episodes/solving/gateway): the URL agents are given when a gateway service runs
# (`manage.py gateway`, the compose `gateway` service); empty = each solve job serves its own.
BUGFORGE_GATEWAY_URL = env("BUGFORGE_GATEWAY_URL", default="")
BUGFORGE_GATEWAY_TIMEOUT_S = env.float("BUGFORGE_GATEWAY_TIMEOUT_S", default=600.0)  # upstream read timeout
BUGFORGE_GATEWAY_RAW_STREAM_MAX_BYTES = env.int("BUGFORGE_GATEWAY_RAW_STREAM_MAX_BYTES", default=4 * 1024 * 1024)
BUGFORGE_GATEWAY_DB_THREADS = env.int("BUGFORGE_GATEWAY_DB_THREADS", default=4)
# A live token's endpoint is remembered this long (so an episode's token works up to this long after it ends).
BUGFORGE_GATEWAY_TOKEN_CACHE_S = env.float("BUGFORGE_GATEWAY_TOKEN_CACHE_S", default=2.0)
# Folders whose model sub-folders (with a config.json) the training launch form offers as base models.
BUGFORGE_MODEL_DIRS = [Path(p) for p in env.list("BUGFORGE_MODEL_DIRS", default=[])]
# Hub ids as base models only where the host reaches a model hub (never the default: offline).
BUGFORGE_ALLOW_HUB_MODELS = env.bool("BUGFORGE_ALLOW_HUB_MODELS", default=False)
# Offer CUDA on the training form even where this web host has no /dev/nvidia0 (GPU workers elsewhere).
BUGFORGE_TRAIN_CUDA = env.bool("BUGFORGE_TRAIN_CUDA", default=False)

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
