#!/usr/bin/env bash
# Start (idempotently) a Podman Docker-compatible API service for the BugForge Docker backend.
#
#   eval "$(scripts/podman-service.sh | tail -n 1)"   # sets BUGFORGE_DOCKER_URL
#
# - installs Debian `podman` and `runc` with apt-get when missing (needs root);
# - keeps all of its state (containers.conf, image store, run root, socket, log) under
#   $BUGFORGE_PODMAN_DIR (default /var/tmp/bugforge-podman), never the system store;
# - starts `podman system service` in the background unless the socket already answers;
# - prints `export BUGFORGE_DOCKER_URL=unix://.../podman.sock` as its last line.
# Progress goes to stderr. Exit status: 0 ready; 3 podman cannot be installed/found on this host
# (clear message on stderr); 1 any other failure (e.g. the service would not start).
set -euo pipefail

STATE_DIR="${BUGFORGE_PODMAN_DIR:-/var/tmp/bugforge-podman}"
SOCK="$STATE_DIR/podman.sock"
CONF="$STATE_DIR/containers.conf"
LOG="$STATE_DIR/service.log"
PIDFILE="$STATE_DIR/service.pid"
APT_LOG="$STATE_DIR/apt.log"
WAIT_S="${BUGFORGE_PODMAN_WAIT_S:-60}"

say() { echo "podman-service: $*" >&2; }
die() { echo "podman-service: ERROR: $*" >&2; exit 1; }
# exit 3: podman cannot be had on this host (tests skip loudly on it; other errors fail them)
unavailable() { echo "podman-service: ERROR: podman is not available: $*" >&2; exit 3; }

answers() {
    [ -S "$SOCK" ] || return 1
    if command -v curl >/dev/null 2>&1; then
        [ "$(curl -s --max-time 3 --unix-socket "$SOCK" http://d/_ping 2>/dev/null)" = "OK" ]
    else
        python3 - "$SOCK" <<'PY' >/dev/null 2>&1
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(3); s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
sys.exit(0 if data.split(b"\r\n", 1)[0].split()[1:2] == [b"200"] else 1)
PY
    fi
}

mkdir -p "$STATE_DIR"
chmod 700 "$STATE_DIR"

if answers; then
    say "already running at $SOCK"
    echo "export BUGFORGE_DOCKER_URL=unix://$SOCK"
    exit 0
fi

# ---- install podman + runc when missing ------------------------------------------------
need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || need+=(runc)
if [ "${#need[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || unavailable "podman/runc are missing (${need[*]}) and installing them needs root"
    command -v apt-get >/dev/null 2>&1 || unavailable "podman/runc are missing and there is no apt-get to install them"
    say "installing ${need[*]} with apt-get (about a minute on a fresh machine; log: $APT_LOG)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >"$APT_LOG" 2>&1 || { tail -n 15 "$APT_LOG" >&2; unavailable "apt-get update failed"; }
    # uidmap/slirp/fuse-overlayfs (recommends) are not needed: root, overlay, network none.
    apt-get install -y --no-install-recommends "${need[@]}" >>"$APT_LOG" 2>&1 \
        || { tail -n 15 "$APT_LOG" >&2; unavailable "apt-get install ${need[*]} failed"; }
    # Optional: a static busybox gives sandbox images a small shell + coreutils.
    command -v busybox >/dev/null 2>&1 \
        || apt-get install -y --no-install-recommends busybox-static >>"$APT_LOG" 2>&1 \
        || say "busybox-static not installed (optional; host coreutils are copied instead)"
fi
command -v podman >/dev/null 2>&1 || unavailable "podman is still not on PATH after installing it"

# ---- configuration (see shared/notes/sandbox.md) ----------------------------------------
cat >"$CONF" <<'EOF'
# Written by scripts/podman-service.sh
[containers]
netns = "none"
pids_limit = 256
# without these podman fails with "setrlimit ... operation not permitted" on these VMs
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
runtime = "runc"          # crun refuses hybrid cgroups
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF="$CONF"

# a stale socket/process from an earlier run that no longer answers
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    say "stopping unresponsive service pid $(cat "$PIDFILE")"
    kill "$(cat "$PIDFILE")" 2>/dev/null || true
    sleep 1
fi
rm -f "$SOCK"

say "starting podman system service at $SOCK (state in $STATE_DIR)"
nohup setsid podman \
    --root "$STATE_DIR/root" --runroot "$STATE_DIR/runroot" \
    --tmpdir "$STATE_DIR/tmp" \
    --cgroup-manager cgroupfs --events-backend file --runtime runc \
    system service --time=0 "unix://$SOCK" >"$LOG" 2>&1 </dev/null &
echo $! >"$PIDFILE"

for _ in $(seq 1 $((WAIT_S * 4))); do
    if answers; then
        say "ready ($(podman --version 2>/dev/null))"
        echo "export BUGFORGE_DOCKER_URL=unix://$SOCK"
        exit 0
    fi
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
    sleep 0.25
done
tail -n 20 "$LOG" >&2 || true
die "podman system service did not answer on $SOCK (log: $LOG)"
