#!/usr/bin/env bash
# Install what the tests need and run them: the whole suite on PostgreSQL, then the tests
# marked `sqlite` on the embedded SQLite default. Real Redis, sandbox, git and Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_venv requirements-dev.txt
# gcc, make and the Python headers: the install-step tests build a C extension (tests/test_add_repo.py)
apt_install bubblewrap git gcc make python3-dev
bash scripts/install-browser.sh
ensure_postgres
export BUGFORGE_TEST_REDIS_URL=${BUGFORGE_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
ensure_redis "$BUGFORGE_TEST_REDIS_URL"
# The Docker backend is tested against Podman's Docker-compatible API.
if docker_env=$(bash scripts/podman-service.sh | tail -n 1); then
    eval "$docker_env"
else
    echo "!! Podman unavailable: Docker-backend tests will be skipped (and say so)" >&2
fi

# The teacher CLIs (Claude Code, Codex; pinned in agents/) for the runner tests: optional.
bash scripts/install-agents.sh || echo "!! teacher CLIs not installed: their runner tests will be skipped (and say so)" >&2
bash scripts/install-harbor.sh || echo "!! .venv-harbor not installed: the Harbor export test fails under CI, skips locally" >&2

export BUGFORGE_VAR_DIR=${BUGFORGE_VAR_DIR:-$PWD/var/test}

"$PY" manage.py makemigrations --check --dry-run

# Parallel workers (pytest-xdist), each with its own database, Redis database and var dir
# (tests/conftest.py, settings.py). Most tests wait on sandboxed subprocesses, so even on 2 cores
# more workers than cores pays. Work stealing keeps the long tests (a GRPO run, a 50-bug batch)
# from leaving workers idle at the end.
WORKERS=${BUGFORGE_TEST_WORKERS:-6}

echo "==> pytest on PostgreSQL ($WORKERS workers)"
DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bugforge} \
    "$PY" -m pytest -n "$WORKERS" --dist worksteal --durations=15 "$@"

echo "==> pytest on SQLite (tests marked sqlite)"
DATABASE_URL="sqlite:///$BUGFORGE_VAR_DIR/bugforge.sqlite3" "$PY" -m pytest -m sqlite -q -n "$WORKERS" --dist worksteal "$@"
