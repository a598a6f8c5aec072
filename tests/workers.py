"""Real worker processes for tests: `manage.py rqworker` against the test database and Redis."""
import os
import subprocess
import sys

from django.conf import settings
from django.db import connection


def worker_env(settings) -> dict:
    """Environment for a worker process that shares this test's database, Redis and work dir."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": settings.RQ_QUEUES["verify"]["URL"],
        "BUGFORGE_WORK_DIR": str(settings.BUGFORGE_WORK_DIR),
        "BUGFORGE_SANDBOX": "local",
        "BUGFORGE_FLAKY_RERUNS": "2",
        "BUGFORGE_FLAKE_TARGET": "0.8",  # two runs a side: 1 - 0.05^(1/2) = 78% < 80%
    }


def manage(*args, env, **kw):
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env, **kw)
