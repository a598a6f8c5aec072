"""Secrets at rest: model API keys are stored encrypted (Fernet: AES-128-CBC + HMAC-SHA256).

    api_key = EncryptedTextField(blank=True)   # reads and writes plain text; the row holds "fernet:…"

The keys come from the environment: ``BUGFORGE_FIELD_KEYS``, comma-separated Fernet keys
(``python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``),
the first one encrypting, all of them decrypting. Rotation: put a new key first, run
``manage.py rotate_field_keys`` (re-encrypts every stored secret with it), then drop the old
key. Unset (development, tests), one key is derived from ``SECRET_KEY``, so a database copied
without its settings still holds no readable key.

The field allows no lookup but ``isnull``: a filter such as ``api_key__startswith=`` cannot
be turned into a yes/no oracle on a key (and would match ciphertext only anyway).
"""
from __future__ import annotations

import base64
import hashlib
import functools

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "fernet:"


@functools.lru_cache(maxsize=4)
def _box(keys: tuple[str, ...]):
    from cryptography.fernet import Fernet, MultiFernet

    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"BUGFORGE_FIELD_KEYS holds a key that is not a Fernet key: {exc}") from None


def field_keys() -> tuple[str, ...]:
    keys = tuple(k.strip() for k in getattr(settings, "BUGFORGE_FIELD_KEYS", ()) if k.strip())
    if keys:
        return keys
    derived = base64.urlsafe_b64encode(hashlib.sha256(f"bugforge-field-key:{settings.SECRET_KEY}".encode()).digest())
    return (derived.decode(),)


def encrypt(plain: str) -> str:
    if not plain:
        return ""
    return PREFIX + _box(field_keys()).encrypt(plain.encode()).decode()


def decrypt(stored: str) -> str:
    from cryptography.fernet import InvalidToken

    if not stored or not stored.startswith(PREFIX):
        return stored or ""  # empty, or a value stored before encryption (the migration encrypts those)
    try:
        return _box(field_keys()).decrypt(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "a stored secret cannot be decrypted with BUGFORGE_FIELD_KEYS (was a key dropped before "
            "`manage.py rotate_field_keys` ran?)") from None


class EncryptedTextField(models.TextField):
    """A text field stored encrypted; in Python it is the plain text."""

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value is not None else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if value else value

    def get_lookup(self, lookup_name):
        return super().get_lookup(lookup_name) if lookup_name == "isnull" else None

    def get_transform(self, name):
        return None
