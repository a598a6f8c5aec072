"""The tiny offline model as a base model the UI and the demo can offer (built once under the var dir)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings

from episodes.engine.locks import file_lock
from training.engine.tiny_model import is_tiny_model

TINY_MODEL_NAME = "tiny-qwen2"


def tiny_model_path() -> Path:
    return Path(settings.VAR_DIR) / "models" / TINY_MODEL_NAME


def make_tiny_model(dest: str | Path, seed: int = 0) -> Path:
    """Build the tiny model into ``dest`` in a child process (torch stays out of the web
    process), atomically: a half-built model is never visible at ``dest``."""
    dest = Path(dest)
    if is_tiny_model(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(dest.with_name(dest.name + ".lock")):
        if is_tiny_model(dest):
            return dest
        if dest.exists() and any(dest.iterdir()):
            raise ValueError(f"{dest} exists and is not a tiny model: choose another directory")
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "training.engine.tiny_model", str(tmp), str(seed)],
                cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=600,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"building the tiny model failed:\n{proc.stderr[-4000:]}")
            if dest.exists():
                dest.rmdir()
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def ensure_tiny_model() -> Path:
    """The path of the tiny model under ``VAR_DIR/models`` (built on first use, ~10 s)."""
    return make_tiny_model(tiny_model_path())
