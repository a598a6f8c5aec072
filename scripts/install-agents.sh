#!/usr/bin/env bash
# Install the pinned teacher CLIs (Claude Code, Codex) into agents/node_modules — optional:
# only the Claude Code / Codex teachers and their tests need them (the tests skip, saying so,
# without them). Idempotent: does nothing when agents/package-lock.json is already installed.
set -euo pipefail
cd "$(dirname "$0")/../agents"
stamp=node_modules/.bugforge-installed
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "!! npm not found: install node and npm to get the teacher CLIs (agents/package.json)" >&2
    exit 1
fi
echo "==> npm ci --prefix agents (Claude Code, Codex CLIs)"
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
