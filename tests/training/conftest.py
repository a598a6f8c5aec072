"""Training fixtures: one tiny model per test var dir (built once), sample bugs validated in
the real sandbox, and datasets built from them."""
from pathlib import Path

import pytest

from tests.factories import make_bug, make_episode, make_repo


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny offline model, built once under the test var dir and shared by every test and
    every parallel worker (the build is locked and atomic; each worker's var dir is a sub-folder)."""
    import os

    from django.conf import settings

    from training.tiny import make_tiny_model

    var_dir = Path(settings.VAR_DIR)
    shared = var_dir.parent if os.environ.get("PYTEST_XDIST_WORKER") else var_dir
    return str(make_tiny_model(shared / "models" / "tiny-test"))


@pytest.fixture
def rl_dataset(approved_bug):
    from training.datasets import build_rl_dataset

    return build_rl_dataset("rl-one", {"repository": "cartcalc", "heldout_fraction": 0})


@pytest.fixture
def sft_dataset(db):
    """An SFT set of 4 successful episodes on 4 bugs of one repository, split 3 / 1 by bug."""
    from episodes.models import Teacher
    from training.datasets import build_sft_dataset

    repo = make_repo("lib-a")
    teacher = Teacher.objects.create(name="teach", terms_allow_training=True)
    for n in range(4):
        make_episode(make_bug(repo, n), teacher, text=f"bug {n}")
    return build_sft_dataset("sft-four", {"heldout_fraction": 0.25})
