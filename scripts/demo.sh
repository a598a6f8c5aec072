#!/usr/bin/env bash
# Set up and run BugForge on one machine: SQLite file under var/, Redis on localhost (started
# if none answers), the local bubblewrap sandbox, a worker and the web server.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
PORT=${PORT:-8000}

ensure_venv requirements.txt
apt_install bubblewrap git || echo "!! could not install bubblewrap: the local sandbox will not work" >&2
ensure_redis "$REDIS_URL"

"$PY" manage.py migrate --noinput -v0
"$PY" manage.py create_staff --username admin
"$PY" manage.py load_sample_repo --baseline --with-bugs
"$PY" manage.py inject cartcalc --method procedural --count 20
"$PY" manage.py make_tiny_model   # an offline base model the Training page offers (CPU)
"$PY" manage.py sandbox_check || echo "!! the configured sandbox is not usable: validation jobs will fail" >&2

mkdir -p var
"$PY" manage.py rqworker inject verify solve >var/worker.log 2>&1 &
WORKER=$!
# training gets its own worker so a long run never holds up validation
"$PY" manage.py rqworker train >var/train-worker.log 2>&1 &
TRAIN_WORKER=$!
trap 'kill $WORKER $TRAIN_WORKER 2>/dev/null || true' EXIT INT TERM
echo "==> workers $WORKER (inject verify solve) and $TRAIN_WORKER (train) running (logs: var/worker.log, var/train-worker.log)"
echo
echo "    BugForge is at http://127.0.0.1:$PORT/  — log in as admin with the password above."
echo
"$PY" manage.py runserver "127.0.0.1:$PORT" --noreload
