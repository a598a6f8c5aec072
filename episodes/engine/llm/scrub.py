"""Secrets out of everything stored or shown (no Django): the endpoint's real key, gateway tokens.

One implementation for the LLM client, the recording gateway, the episodes' stored fields
(events, session logs, errors, trajectories) and the pages that show recorded calls: every
occurrence of a secret, in strings at any depth of dicts and lists (keys included), becomes
``[redacted]``::

    scrub = Scrubber(api_key, token)
    scrub.text("... sk-real-key ...")          # "... [redacted] ..."
    scrub.obj({"messages": [...]})            # a copy, scrubbed at any depth
    Scrubber(api_key, credentials=True).obj(stored_request)   # for display, see below

``credentials=True`` (what a page showing a stored body wants) also masks what looks like a
credential though it is no secret we know: the value of a field named like one
(``Authorization``, ``x-api-key``, ``password``…) and anything shaped like a gateway token or
an OpenAI / Anthropic key — the gateway never stores the real key, but a client may put its
own in a body.
"""
from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4  # shorter "secrets" (a placeholder key) would redact ordinary text
CREDENTIAL_KEYS = re.compile(r"^(x-)?(api[-_]?key|authorization|proxy-authorization|password|secret|access[-_]?token)$",
                             re.I)
CREDENTIAL_VALUES = re.compile(r"\b(bfgw_|sk-(ant-)?)[A-Za-z0-9_\-]{16,}")  # gateway tokens, OpenAI/Anthropic keys


class Scrubber:
    def __init__(self, *secrets: str, credentials: bool = False):
        self.secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self.credentials = credentials
        self._bytes = [s.encode() for s in self.secrets]

    def present_in(self, data: bytes) -> bool:
        """Whether one of the secrets is in ``data`` (a cheap test before scrubbing a body)."""
        return any(s in data for s in self._bytes)

    def text(self, value: str) -> str:
        for s in self.secrets:
            value = value.replace(s, REDACTED)
        return CREDENTIAL_VALUES.sub(REDACTED, value) if self.credentials else value

    def obj(self, value: Any) -> Any:
        if not self.secrets and not self.credentials:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k:
                    REDACTED if self.credentials and CREDENTIAL_KEYS.match(str(k)) else self.obj(v)
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.obj(v) for v in value]
        return value
