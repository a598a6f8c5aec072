#!/usr/bin/env bash
# .venv-harbor: Python 3.12 with harbor==0.26.0 (Harbor needs Python >= 3.12), for the test that
# loads BugForge's Harbor export with Harbor's own task model (tests/training/test_harbor_export.py).
# harbor's full dependencies (litellm, supabase, fastmcp, ...) are heavy and unused here, so it
# is installed --no-deps with exactly what harbor.models.task imports, pinned. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-harbor
PINS=(harbor==0.26.0 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
      typing_extensions==4.16.0 toml==0.10.2 pathspec==1.1.1 shortuuid==1.0.13)
stamp=$VENV/.bugforge-installed
want=$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
py=${PYTHON312:-}
if [ -z "$py" ]; then
    for candidate in python3.12 /root/.pyenv/versions/3.12*/bin/python3.12; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
            py=$candidate; break
        fi
    done
fi
if [ -z "$py" ]; then
    echo "!! no Python >= 3.12 found (set PYTHON312): Harbor cannot be installed" >&2
    exit 1
fi
echo "==> creating $VENV ($("$py" --version)) with harbor==0.26.0"
rm -rf "$VENV"
"$py" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --no-deps "${PINS[@]}"
"$VENV/bin/python" -c 'from harbor.models.task.task import Task'
echo "$want" > "$stamp"
