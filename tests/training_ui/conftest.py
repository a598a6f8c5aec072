import pytest


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # The staff/reviewer fixtures hash a password each; the default hasher costs ~1 s per test here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
