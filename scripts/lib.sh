# Shared by scripts/demo.sh and scripts/test.sh: the venv, and services that must answer.
VENV=${VENV:-.venv}
PY="$VENV/bin/python"

ensure_venv() {  # ensure_venv REQUIREMENTS_FILE
    if [ ! -x "$PY" ]; then
        echo "==> creating $VENV (Python 3.11)"
        "${PYTHON:-python3.11}" -m venv "$VENV"
        "$PY" -m pip install -q --upgrade pip
    fi
    echo "==> installing $1"
    "$PY" -m pip install -q -r "$1"
}

apt_install() {  # apt_install PACKAGE... (once per machine; quiet)
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "==> apt-get install ${missing[*]}"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

redis_answers() {
    "$PY" - "$1" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2).ping()
PY
}

ensure_redis() {  # ensure_redis URL: start a local redis-server when none answers there
    local url=$1
    redis_answers "$url" && return 0
    command -v redis-server >/dev/null || apt_install redis-server
    local port; port=$(echo "$url" | sed -E 's#^redis://([^/:]*)(:([0-9]+))?.*#\3#'); port=${port:-6379}
    echo "==> starting redis-server on 127.0.0.1:$port"
    mkdir -p var
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
        --dir "$PWD/var" --logfile "$PWD/var/redis.log"
    for _ in $(seq 50); do redis_answers "$url" && return 0; sleep 0.1; done
    echo "redis did not start on $url (see var/redis.log)" >&2; return 1
}

ensure_postgres() {  # start the machine's PostgreSQL cluster if it is down
    pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && return 0
    echo "==> starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 0.2; done
    echo "PostgreSQL did not start" >&2; return 1
}
