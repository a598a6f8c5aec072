"""Secrets out of everything stored (no Django): the endpoint's real key, gateway tokens.

One implementation for the LLM client, the recording gateway and the episodes' stored fields
(events, session logs, errors, trajectories): every occurrence of a secret, in strings at any
depth of dicts and lists (keys included), becomes ``[redacted]``.
"""
from __future__ import annotations

from typing import Any

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4  # shorter "secrets" (a placeholder key) would redact ordinary text


class Scrubber:
    def __init__(self, *secrets: str):
        self.secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self._bytes = [s.encode() for s in self.secrets]

    def present_in(self, data: bytes) -> bool:
        return any(s in data for s in self._bytes)

    def text(self, value: str) -> str:
        for s in self.secrets:
            value = value.replace(s, REDACTED)
        return value

    def obj(self, value: Any) -> Any:
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.obj(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.obj(v) for v in value]
        return value
