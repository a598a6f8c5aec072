"""What the tests measure once per run, shared by the run's parallel workers.

The sample repository's baseline and the sample bugs' verdicts are the same for every worker
(same code, commit and test command), so the first worker to ask measures them in the real
sandbox, under a lock, and the others read its result instead of measuring again. Without
pytest-xdist the cache is the process's own. The folder is the run's (its xdist run id) and is
removed when the run ends (``tests/conftest.py``), so no result outlives the code it measured.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

from episodes.engine.locks import file_lock

T = TypeVar("T")
_measured: dict[str, object] = {}


def shared_dir(run_id: str | None = None) -> Path | None:
    run_id = run_id or os.environ.get("PYTEST_XDIST_TESTRUNUID")
    return Path(tempfile.gettempdir()) / f"bugforge-test-run-{run_id}" if run_id else None


def measured_once(key: str, measure: Callable[[], T]) -> T:
    """``measure()``'s result, measured once per test run (``key`` names what it measures)."""
    if key not in _measured:
        base = shared_dir()
        if base is None:
            _measured[key] = measure()
        else:
            path = base / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.pickle"
            with file_lock(path.with_suffix(".lock")):  # creates the folder
                if path.exists():
                    _measured[key] = pickle.loads(path.read_bytes())
                else:
                    _measured[key] = measure()
                    partial = path.with_suffix(".partial")
                    partial.write_bytes(pickle.dumps(_measured[key]))
                    partial.replace(path)
    return _measured[key]
