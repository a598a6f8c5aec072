"""The LLM injector end to end: prompts out through the SDKs to the scripted server, replies
parsed strictly, the planted function spliced into the real sample file and the patch applied
with ``git apply``."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from episodes.engine.inject import (
    InjectionRequest,
    MalformedReply,
    inject,
    parse_reply,
    problem_statement_from_failure,
)
from episodes.engine.inject.splice import blank_body, splice
from episodes.engine.git.workspace import unified_diff
from episodes.engine.llm import EndpointConfig, LLMClient

from .fake_upstream import Reply

KEY = "sk-inject-SECRET-77d1e0b3"
SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cartcalc"
SHIPPING = "cartcalc/shipping.py"
QUALNAME = "ShippingPolicy.band_for"
COVERING = [
    "tests/test_shipping.py::test_weight_bands_and_surcharge",
    "tests/test_shipping.py::test_free_shipping_threshold_is_inclusive",
]
ORIGINAL_BODY = "if weight_grams <= band.max_grams:"

BUGGY = '''\
def band_for(self, weight_grams: int) -> Optional[WeightBand]:
    """The first (lightest) band the parcel fits into, if any."""
    for band in self.bands:
        if weight_grams < band.max_grams:
            return band
    return None
'''

VERIFIER = '''\
import sys

from cartcalc.shipping import DEFAULT_SHIPPING

band = DEFAULT_SHIPPING.band_for(500)
sys.exit(0 if band is not None and band.max_grams == 500 else 1)
'''

PROBLEM = """\
A parcel that weighs exactly the limit of a weight band is charged the price of the next,
heavier band. With the default policy a 500 g parcel costs 6.90 instead of 4.90, and a
2000 g parcel costs 12.90 instead of 6.90. Parcels one gram lighter are priced correctly.
"""


def reply(bug=BUGGY, verifier=VERIFIER, problem=PROBLEM, *, drop=()):
    parts = []
    if "BUG" not in drop:
        parts.append(f"### BUG\n```python\n{bug}```\n")
    if "VERIFIER" not in drop:
        parts.append(f"### VERIFIER\n```python\n{verifier}```\n")
    if "PROBLEM" not in drop:
        parts.append(f"### PROBLEM\n{problem}")
    return "Here is the bug.\n\n" + "\n".join(parts)


@pytest.fixture(scope="module")
def sample():
    if not (SAMPLE / SHIPPING).exists():
        pytest.skip("the sample library examples/cartcalc is not in this checkout")
    return SAMPLE


@pytest.fixture
def request_for(sample):
    def build(mode="modify", seed=7):
        source = (sample / SHIPPING).read_text()
        return InjectionRequest.for_function(
            mode, SHIPPING, QUALNAME, source,
            covering_tests=COVERING,
            test_sources={"tests/test_shipping.py": (sample / "tests" / "test_shipping.py").read_text()},
            seed=seed,
        )
    return build


@pytest.fixture
def git_sample(sample, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(sample, repo, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc"))
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_NOSYSTEM": "1"}
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        subprocess.run(["git", *cmd], cwd=repo, env=env, check=True)
    return repo


def git_apply(repo, patch, *extra):
    return subprocess.run(["git", "apply", *extra, "-"], cwd=repo, input=patch, text=True, capture_output=True)


def run_verifier(repo, verifier):
    script = repo / ".verifier.py"
    script.write_text(verifier)
    env = {**os.environ, "PYTHONPATH": str(repo)}
    return subprocess.run([sys.executable, str(script)], cwd=repo, env=env, capture_output=True).returncode


def client_for(upstream, protocol="openai_chat"):
    return LLMClient(EndpointConfig(protocol, upstream.url, "model-x", api_key=KEY,
                                    usd_per_mtok_in=2, usd_per_mtok_out=10))


@pytest.mark.parametrize("protocol", ["openai_chat", "anthropic"])
def test_good_reply_gives_a_patch_that_applies_and_a_verifier_that_tells(
    fake_upstream, request_for, git_sample, protocol
):
    fake_upstream.script(Reply(reply(), tokens_in=5000, tokens_out=1000))
    stored = []
    outcome = inject(client_for(fake_upstream, protocol), request_for(), on_call=stored.append)

    assert outcome.ok, outcome.failures
    assert outcome.failures == [] and outcome.calls == 1 and len(stored) == 1
    assert outcome.cost_usd == pytest.approx(5000 * 2 / 1e6 + 1000 * 10 / 1e6)
    assert outcome.verifier == VERIFIER
    assert outcome.problem_statement.strip() == PROBLEM.strip()
    assert outcome.patch.startswith(f"diff --git a/{SHIPPING} b/{SHIPPING}\n")
    assert "-            if weight_grams <= band.max_grams:" in outcome.patch
    assert "+            if weight_grams < band.max_grams:" in outcome.patch

    # The verifier passes on the clean code, fails with the bug, passes again once reverted.
    assert run_verifier(git_sample, outcome.verifier) == 0
    applied = git_apply(git_sample, outcome.patch)
    assert applied.returncode == 0, applied.stderr
    assert "if weight_grams < band.max_grams:" in (git_sample / SHIPPING).read_text()
    assert run_verifier(git_sample, outcome.verifier) == 1
    assert git_apply(git_sample, outcome.patch, "-R").returncode == 0
    assert run_verifier(git_sample, outcome.verifier) == 0

    # What was sent: the function, its file, the covering tests; the key only in the auth header.
    [sent] = fake_upstream.requests
    prompt = str(sent.body["messages"])
    assert ORIGINAL_BODY in prompt and "test_weight_bands_and_surcharge" in prompt and "### VERIFIER" in prompt
    assert KEY.encode() not in sent.raw


def test_malformed_reply_costs_one_attempt_and_the_retry_says_why(fake_upstream, request_for, git_sample):
    fake_upstream.script(reply(drop=("VERIFIER",)), reply())
    outcome = inject(client_for(fake_upstream), request_for(), retries=2)

    assert outcome.ok and outcome.calls == 2
    assert len(outcome.failures) == 1
    assert "malformed reply" in outcome.failures[0] and "'### VERIFIER'" in outcome.failures[0]
    retry = fake_upstream.requests[1].body["messages"]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert retry[2]["content"] == reply(drop=("VERIFIER",))  # the rejected reply, for context
    assert "no '### VERIFIER' section" in retry[3]["content"]
    assert git_apply(git_sample, outcome.patch, "--check").returncode == 0


def test_every_attempt_malformed_is_a_clean_failure(fake_upstream, request_for):
    fake_upstream.script(
        "I'd rather not.",
        reply(bug="def band_for(self, weight_grams):\n    return (\n"),
        reply(bug=BUGGY.replace("band_for", "find_band")),
    )
    outcome = inject(client_for(fake_upstream), request_for(), retries=2)

    assert outcome.ok is False and outcome.patch == "" and outcome.calls == 3
    assert len(outcome.failures) == 3
    assert "no '### BUG' section" in outcome.failures[0]
    assert "does not compile" in outcome.failures[1]
    assert "'find_band'" in outcome.failures[2]
    assert fake_upstream.pending == 0


def test_upstream_errors_cost_attempts(fake_upstream, request_for):
    fake_upstream.script(Reply.error(500), Reply.garbage(), reply())
    outcome = inject(client_for(fake_upstream, "anthropic"), request_for(), retries=2)
    assert outcome.ok and outcome.calls == 3
    assert outcome.failures[0].startswith("attempt 1: upstream error: HTTP 500")
    assert "attempt 2: upstream error" in outcome.failures[1]

    fake_upstream.script(Reply.error(429, "slow down"))
    outcome = inject(client_for(fake_upstream), request_for(), retries=0)
    assert outcome.ok is False and outcome.calls == 1 and "HTTP 429" in outcome.failures[0]


def test_key_is_never_in_bodies_or_failure_texts(fake_upstream, request_for):
    fake_upstream.script(Reply.error(401, f"bad key {KEY}"), Reply(f"### BUG\n{KEY}"))
    outcome = inject(client_for(fake_upstream), request_for(), retries=1)
    assert outcome.ok is False and len(outcome.failures) == 2
    assert KEY not in repr(outcome) and "[redacted]" in outcome.failures[0]
    for sent in fake_upstream.requests:
        assert KEY.encode() not in sent.raw


@pytest.mark.parametrize(
    "problem, why",
    [
        ("Bands misprice parcels; see tests/test_shipping.py for the cases that break now.", "test"),
        ("The band lookup is wrong at the limits, test_weight_bands_and_surcharge shows it clearly.", "test"),
        ("Band lookup is wrong at the limit. Run the tests with pytest to see the failure happen.", "pytest"),
        ("Band lookup is wrong at exact limits; please run the tests again after changing the shipping module.", "run"),
        ("It misprices parcels at the limit because it uses `if weight_grams < band.max_grams:` there.", "quotes"),
        ("Wrong band.", "short"),
    ],
)
def test_problem_statements_that_leak_are_rejected(request_for, problem, why):
    req = request_for()
    with pytest.raises(MalformedReply) as err:
        parse_reply(reply(problem=problem), function_source=req.function_source, qualname=QUALNAME,
                    test_names={"test_weight_bands_and_surcharge"})
    assert why in err.value.reason or why in str(err.value).lower()


def test_problem_naming_a_test_is_rejected_through_inject(fake_upstream, request_for):
    leaky = PROBLEM + "\nThis shows up in test_weight_bands_and_surcharge.\n"
    fake_upstream.script(reply(problem=leaky), reply())
    outcome = inject(client_for(fake_upstream), request_for())
    assert outcome.ok and "names a test function" in outcome.failures[0]
    assert "names a test function" in fake_upstream.requests[1].body["messages"][-1]["content"]


@pytest.mark.parametrize(
    "text, reason",
    [
        (reply() + "\n### BUG\n```python\n" + BUGGY + "```\n", "2 '### BUG' sections"),
        (reply(drop=("PROBLEM",)), "no '### PROBLEM' section"),
        (reply(verifier="import sys\nsys.exit(0 if (1 else 1)\n"), "VERIFIER section does not compile"),
        (reply(bug=BUGGY.replace("<", "<=")), "same as the original"),
        (reply(bug="import math\n\n" + BUGGY), "exactly one function definition"),
        (reply(bug=BUGGY + "```\n```python\nx = 1\n"), "exactly one code block"),
        (reply(bug=BUGGY.replace("band_for", "band_of")), "must redefine 'band_for'"),
    ],
)
def test_parse_reply_is_strict(request_for, text, reason):
    req = request_for()
    with pytest.raises(MalformedReply) as err:
        parse_reply(text, function_source=req.function_source, qualname=QUALNAME)
    assert reason in err.value.reason


def test_no_op_ignores_formatting_comments_and_docstrings(request_for):
    req = request_for()
    docstring = '"""The first (lightest) band the parcel fits into, if any."""'
    same = textwrap.dedent(req.function_source).replace(docstring, '"""Reworded."""  # tidy')
    same = same.replace("return None", "return (None)")
    with pytest.raises(MalformedReply, match="same as the original"):
        parse_reply(reply(bug=same), function_source=req.function_source, qualname=QUALNAME)


def test_headers_inside_code_fences_do_not_start_sections(request_for):
    req = request_for()
    verifier = "### PROBLEM is just a comment here\n" + VERIFIER
    parsed = parse_reply(reply(verifier=verifier), function_source=req.function_source, qualname=QUALNAME)
    assert parsed.verifier == verifier and parsed.problem_statement.strip() == PROBLEM.strip()
    assert parsed.function_source == BUGGY


def test_rewrite_blanks_the_body_and_keeps_what_comes_back(fake_upstream, request_for, git_sample):
    heaviest_first = '''\
    def band_for(self, weight_grams: int) -> Optional[WeightBand]:
        """The first (lightest) band the parcel fits into, if any."""
        fitting = [band for band in self.bands if weight_grams < band.max_grams]
        return fitting[0] if fitting else None
'''
    fake_upstream.script(f"### IMPLEMENTATION\n```python\n{heaviest_first}```\n")
    outcome = inject(client_for(fake_upstream), request_for("rewrite"))

    assert outcome.ok, outcome.failures
    sent = str(fake_upstream.requests[0].body)
    assert ORIGINAL_BODY not in sent and "for band in self.bands:" not in sent
    assert "The first (lightest) band the parcel fits into, if any." in sent  # docstring kept
    assert "def band_for(self, weight_grams: int) -> Optional[WeightBand]:" in sent
    assert "### IMPLEMENTATION" in sent
    assert outcome.problem_statement == ""  # made from the failing output after validation
    assert "tests/test_shipping.py::test_weight_bands_and_surcharge" in outcome.verifier
    compile(outcome.verifier, "verifier.py", "exec")
    applied = git_apply(git_sample, outcome.patch)
    assert applied.returncode == 0, applied.stderr
    assert "fitting = [band for band in self.bands" in (git_sample / SHIPPING).read_text()


def test_rewrite_rejects_a_changed_signature(request_for):
    req = request_for("rewrite")
    changed = "def band_for(self, weight_grams, strict=False):\n    return None\n"
    with pytest.raises(MalformedReply, match="signature"):
        parse_reply(f"### IMPLEMENTATION\n```python\n{changed}```", mode="rewrite",
                    function_source=req.function_source, qualname=QUALNAME)


def test_seed_varies_the_prompt_and_bad_requests_fail_without_calls(fake_upstream, request_for):
    from episodes.engine.inject.llm_injector import build_prompt

    prompts = {build_prompt(request_for(seed=s))[1] for s in range(12)}
    assert len(prompts) > 1
    bad = request_for()
    bad.end_line = bad.start_line + 1
    outcome = inject(client_for(fake_upstream), bad)
    assert outcome.ok is False and outcome.calls == 0 and "invalid request" in outcome.failures[0]
    assert fake_upstream.requests == []


def test_splice_and_diff_handle_methods_and_a_missing_final_newline(tmp_path):
    source = "class A:\n    def f(self):\n        return 1\n\n    def g(self):\n        return 2"
    new = splice(source, 5, 6, "def g(self):\n    return 3\n")
    assert new == "class A:\n    def f(self):\n        return 1\n\n    def g(self):\n        return 3"
    (tmp_path / "m.py").write_text(source)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    patch = unified_diff("m.py", source, new)
    assert "\\ No newline at end of file" in patch
    assert git_apply(tmp_path, patch).returncode == 0
    assert (tmp_path / "m.py").read_text() == new
    assert blank_body("    def g(self): return 2\n") == (
        "    def g(self):\n        raise NotImplementedError  # body removed: implement this function\n"
    )


def test_fallback_problem_statement_hides_tests():
    output = textwrap.dedent("""\
        ============================= FAILURES =============================
        ______________ test_weight_bands_and_surcharge[500-4.90] ______________
        tests/test_shipping.py:25: in test_weight_bands_and_surcharge
            assert DEFAULT_SHIPPING.cost(grams, CHEAP) == Money(price)
        E   AssertionError: assert Money('6.90') == Money('4.90')
        E    +  where Money('6.90') = <bound method ShippingPolicy.cost>(500, Money('10.00'))
        E    +    where test_helper = tests/test_shipping.py::test_weight_bands_and_surcharge
        FAILED tests/test_shipping.py::test_weight_bands_and_surcharge[500-4.90] - AssertionError
        ========================= 1 failed in 0.05s =========================
        """)
    text = problem_statement_from_failure(output, QUALNAME)
    assert "Money('6.90') == Money('4.90')" in text
    # neither the changed function nor pytest's chatter: the symptom only (the bug is not localized for free)
    for leak in ("tests/", "test_", "pytest", "::", "FAILED", "run the tests", QUALNAME, QUALNAME.split(".")[-1],
                 "where", "bound method"):
        assert leak not in text, leak
    assert problem_statement_from_failure("", "f").startswith("Wrong results since the last change")


def test_fallback_problem_statement_names_the_exception_not_the_function():
    output = ("E   TypeError: unsupported operand type(s) for -=: 'str' and 'str'\n"
              "E   Use -v to get more diff\n"
              "E   assert <Order object at 0x7f3a2b1c9d80> is not None\n")
    text = problem_statement_from_failure(output, "shop.catalog.Catalog.search")
    assert text.startswith("TypeError since the last change")
    assert "unsupported operand type(s) for -=" in text and "0x…" in text and "0x7f3a" not in text
    assert "Use -v" not in text and "search" not in text and "Catalog" not in text
