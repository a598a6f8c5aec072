"""The bundled sample repository (examples/cartcalc) as a git repository, and hand-written
bugs for it.

They give the demo something to validate before any injector has run, and they cover each
verdict: real bugs, one whose verifier cannot tell (invalid), one with a verifier that fails
~30% of the time on its own (flaky).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from episodes.engine.validate.validator import pytest_verifier
from episodes.engine.git.workspace import diff, git

SAMPLE_SOURCE = Path(__file__).resolve().parents[3] / "examples" / "cartcalc"
# Fixed identity and dates make the commit hash the same on every machine.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "BugForge",
    "GIT_AUTHOR_EMAIL": "samples@bugforge.invalid",
    "GIT_COMMITTER_NAME": "BugForge",
    "GIT_COMMITTER_EMAIL": "samples@bugforge.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


def build_sample_git_repo(dest: Path, source: Path = SAMPLE_SOURCE) -> str:
    """Turn the sample library into a git repository at ``dest`` (once); return its commit."""
    if (dest / ".git").exists():
        return git("rev-parse", "HEAD", cwd=dest).strip()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".sample-"))
    shutil.copytree(source, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc"))
    env = {**os.environ, **GIT_ENV}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "cartcalc sample library"]):
        subprocess.run(["git", *args], cwd=tmp, env=env, check=True, capture_output=True)
    tmp.rename(dest)
    return git("rev-parse", "HEAD", cwd=dest).strip()


@dataclass(frozen=True)
class SampleBug:
    target: str
    path: str
    old: str
    new: str
    verifier: str
    problem_statement: str


FLAKY_VERIFIER = textwrap.dedent(
    """\
    # Deliberately flaky: fails ~30% of runs whatever the code (the run's seed decides).
    import os, random, sys
    import pytest
    if random.Random(os.environ.get("PYTHONHASHSEED", "0")).random() < 0.3:
        sys.exit(1)
    sys.exit(0 if pytest.main(["-q", "-p", "no:cacheprovider", "tests/test_shipping.py"]) == 0 else 1)
    """
)

def fast_boundary_verifier(flake_rate: float = 0.0) -> str:
    """A verifier of the first sample bug (a parcel at a band's limit) in plain Python, no
    pytest (~40 ms a run), that with ``flake_rate`` > 0 also fails on clean code on that share
    of runs — decided by the run's seed (PYTHONHASHSEED), so a validation's flakes are known."""
    flaky = f"int(os.environ['PYTHONHASHSEED']) % 1000 < {round(flake_rate * 1000)}"
    return (
        "# Fails on the boundary bug" + (f"; also on {flake_rate:.0%} of runs whatever the code" if flake_rate else "")
        + ".\nimport os\n"
        "from cartcalc.shipping import DEFAULT_SHIPPING as policy\n"
        "band = policy.bands[0]\n"
        "fixed = policy.band_for(band.max_grams) is band\n"
        f"raise SystemExit(0 if fixed and not ({flaky if flake_rate else 'False'}) else 1)\n"
    )


SAMPLE_BUGS = [
    SampleBug(
        "cartcalc/shipping.py::ShippingPolicy.band_for",
        "cartcalc/shipping.py",
        "if weight_grams <= band.max_grams:",
        "if weight_grams < band.max_grams:",
        pytest_verifier(["tests/test_shipping.py"]),
        "A parcel that weighs exactly a band's limit is charged the next band's price.",
    ),
    SampleBug(
        "cartcalc/money.py::Money.allocate",
        "cartcalc/money.py",
        "key=lambda i: (-remainders[i], i)",
        "key=lambda i: (-remainders[i], -i)",
        pytest_verifier(["tests/test_money.py"]),
        "When an amount is split and the leftover cents tie, they go to the last parts instead of the first.",
    ),
    SampleBug(
        "cartcalc/discounts.py::BuyXGetY.free_units",
        "cartcalc/discounts.py",
        "return groups * self.get + max(0, rest - self.buy)",
        "return groups * self.get + max(0, rest - self.buy - 1)",
        pytest_verifier(["tests/test_discounts.py"]),
        "Buy-X-get-Y promotions give one free unit too few when a partial group is in the cart.",
    ),
    SampleBug(
        "cartcalc/discounts.py::TieredDiscount.rate_for",
        "cartcalc/discounts.py",
        "if subtotal >= threshold:",
        "if subtotal > threshold:",
        pytest_verifier(["tests/test_discounts.py"]),
        "A cart whose subtotal equals a tier's threshold does not get that tier's rate.",
    ),
    SampleBug(  # invalid: the change is in a docstring, nothing can fail
        "cartcalc/money.py::Money.split",
        "cartcalc/money.py",
        "earlier parts get the extra cents.",
        "the earlier parts get the extra cents.",
        pytest_verifier(["tests/test_money.py"]),
        "The documentation of Money.split is unclear.",
    ),
    SampleBug(  # flaky: a real bug, with a verifier that fails by itself now and then
        "cartcalc/shipping.py::ShippingPolicy.cost",
        "cartcalc/shipping.py",
        "started_kg = -(-excess // GRAMS_PER_KG)",
        "started_kg = excess // GRAMS_PER_KG",
        FLAKY_VERIFIER,
        "Parcels over the heaviest band are undercharged: a started kilogram is not billed.",
    ),
]


def sample_patch(workspaces, mirror, commit, bug: SampleBug) -> str:
    with workspaces.checkout(mirror, commit) as ws:
        source = ws / bug.path
        text = source.read_text()
        if bug.old not in text:
            raise ValueError(f"sample bug {bug.target}: {bug.old!r} is not in {bug.path}")
        source.write_text(text.replace(bug.old, bug.new, 1))
        return diff(ws)
