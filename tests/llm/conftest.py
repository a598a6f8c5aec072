"""The LLM-side tests need neither the database nor Redis: only a scripted local model server."""
import pytest

from .fake_upstream import fake_upstream  # noqa: F401  (the fixture, for every test in this folder)


@pytest.fixture(autouse=True)
def _isolated():
    """Replaces the project-wide fixture of the same name, which needs Django settings and Redis."""
    yield
