#!/usr/bin/env bash
# Install (idempotently) the browser the Playwright tests drive: Debian's `chromium` package.
#
#   scripts/install-browser.sh
#
# - does nothing when /usr/bin/chromium already exists and starts;
# - otherwise runs `apt-get update` + `apt-get install -y chromium` plus fonts (so screenshots
#   carry readable text); needs root (or passwordless sudo);
# - NEVER runs `playwright install` (it downloads its own browser, which fails here).
# Exit status: 0 ready; 3 chromium cannot be installed on this host (clear message on stderr);
# 1 any other failure (e.g. installed but does not start).
set -euo pipefail

CHROMIUM=/usr/bin/chromium
PACKAGES=(chromium fonts-liberation fonts-dejavu-core)

say() { echo "install-browser: $*" >&2; }
unavailable() { echo "install-browser: ERROR: cannot install chromium: $*" >&2; exit 3; }
die() { echo "install-browser: ERROR: $*" >&2; exit 1; }

check() {
    local v
    v="$("$CHROMIUM" --headless --no-sandbox --disable-gpu --version 2>/dev/null)" || return 1
    say "ready: $v ($CHROMIUM)"
}

if [ -x "$CHROMIUM" ]; then
    check && exit 0
    die "$CHROMIUM exists but does not run; try: apt-get install --reinstall chromium"
fi

command -v apt-get >/dev/null 2>&1 || unavailable "no apt-get on this host (Debian/Ubuntu only); install Chromium at $CHROMIUM by hand"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        unavailable "not root and no passwordless sudo; run as root: apt-get update && apt-get install -y ${PACKAGES[*]}"
    fi
fi

export DEBIAN_FRONTEND=noninteractive
say "installing ${PACKAGES[*]} with apt-get"
"${SUDO[@]}" apt-get update -q >&2 || unavailable "apt-get update failed (no network or no package mirror reachable?)"
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >&2 \
    || unavailable "apt-get install ${PACKAGES[*]} failed (package not available for this distribution?)"

[ -x "$CHROMIUM" ] || die "apt-get succeeded but $CHROMIUM is missing (on Ubuntu, 'chromium' is a snap stub; use Debian's package)"
check || die "$CHROMIUM was installed but does not start"
