"""LLM injection end to end: a batch asks a real local HTTP server speaking the OpenAI Chat
Completions (or Anthropic Messages) protocol, every call is stored, usable replies become
bugs that the sandbox validates, unusable ones cost retries and are counted on the batch."""
import pytest

from episodes.injection import batches as injection
from episodes.models import Bug, InjectionBatch, LLMCall, LLMEndpoint

from .llm.fake_upstream import FakeUpstream, Reply
from .llm.test_injector import BUGGY, KEY, PROBLEM, reply

pytestmark = pytest.mark.django_db

TARGET = "cartcalc/shipping.py::ShippingPolicy.band_for"


@pytest.fixture
def upstream():
    with FakeUpstream() as server:
        yield server


def endpoint(upstream, protocol):
    return LLMEndpoint.objects.create(name=f"fake-{protocol}", protocol=protocol, base_url=upstream.url,
                                      model="scripted-1", api_key=KEY, usd_per_mtok_in=3, usd_per_mtok_out=15)


def test_openai_batch_good_cheating_and_malformed_replies(sample_repo, settings, upstream):
    settings.BUGFORGE_FLAKE_TARGET = 0.99  # one run a side
    upstream.script(
        reply(),  # a real bug with a working verifier → valid
        reply(bug=BUGGY.replace("weight_grams <", "weight_grams + 1 <"), verifier="raise SystemExit(0)\n"),  # → invalid
        "no sections at all", Reply.garbage(), reply(drop=("VERIFIER",)),  # 3 unusable → counted failure
    )
    batch = injection.start_batch(sample_repo, "llm_modify", 3, seed=4, endpoint=endpoint(upstream, "openai_chat"),
                                  targets=[TARGET], sync=True)
    assert batch.status == "done", batch.error
    bugs = list(Bug.objects.filter(batch=batch).order_by("id"))
    assert [b.status for b in bugs] == ["valid", "invalid"]
    assert bugs[1].invalid_kind == "verifier_passes_buggy"
    assert all(b.method == "llm_modify" and b.injector == "scripted-1" and b.target == TARGET for b in bugs)
    assert "weight_grams < band.max_grams" in bugs[0].patch
    assert bugs[0].problem_statement.strip() == PROBLEM.strip()
    [failure] = batch.options["failures"]
    assert failure["target"] == TARGET and len(failure["reasons"]) == 3
    calls = LLMCall.objects.filter(batch=batch).order_by("sequence")
    assert [c.sequence for c in calls] == [1, 2, 3, 4, 5]
    assert calls[0].tokens_in > 0 and calls[0].cost_usd > 0 and calls[0].request["model"] == "scripted-1"
    for call in calls:
        assert KEY not in str(call.request) + str(call.response) + call.error
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in upstream.requests)
    row = injection.figures(sample_repo)[0]
    assert row["method"] == "llm_modify" and row["valid"] == 1
    # every attempt counts: 3 targets tried, 2 candidates, 1 valid; all 5 calls' cost on that 1 bug
    assert (row["attempts"], row["candidates"], row["llm_calls"]) == (3, 2, 5)
    assert row["yield"] == pytest.approx(1 / 3)
    assert row["cost_per_valid_usd"] == pytest.approx(float(sum(c.cost_usd for c in calls)))
    assert row["invalid_by_reason"] == {"verifier_passes_buggy": 1}
    assert row["seconds_per_candidate"] > 0 and row["seconds_per_valid"] >= row["seconds_per_candidate"]


def test_anthropic_rewrite_batch(sample_repo, settings, upstream):
    settings.BUGFORGE_FLAKE_TARGET = 0.99  # one run a side
    upstream.script(f"### IMPLEMENTATION\n```python\n{BUGGY}```\n")
    batch = injection.start_batch(sample_repo, "llm_rewrite", 1, seed=1, endpoint=endpoint(upstream, "anthropic"),
                                  targets=[TARGET], sync=True)
    bug = Bug.objects.get(batch=batch)
    assert bug.status == "valid", (bug.invalid_reason, bug.error)
    assert bug.problem_statement and "test_" not in bug.problem_statement
    assert LLMCall.objects.get(batch=batch).protocol == "anthropic"
    sent = upstream.requests[0].body
    assert "if weight_grams <= band.max_grams" not in str(sent)  # the body was blanked for the model


def test_unknown_endpoint_fails_the_batch_with_a_reason(sample_repo):
    batch = InjectionBatch.objects.create(repository=sample_repo, method="llm_modify", requested=1,
                                          options={"endpoint": 999999})
    with pytest.raises(LLMEndpoint.DoesNotExist):
        injection.run_batch(batch.pk)
    batch.refresh_from_db()
    assert batch.status == "failed" and "DoesNotExist" in batch.error


def test_inject_sync_prints_its_own_batch_figures_when_it_made_nothing(sample_repo, upstream):
    import io

    from django.core.management import call_command

    ep = endpoint(upstream, "openai_chat")
    upstream.script("no sections at all", Reply.garbage(), reply(drop=("VERIFIER",)))
    out = io.StringIO()
    call_command("inject", "cartcalc", "--method", "llm_modify", "--count", "1", "--endpoint", ep.name,
                 "--target", TARGET, "--sync", stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    batch = InjectionBatch.objects.get()
    assert f"batch {batch.pk}: done, 0 candidate(s) from 1 attempt(s)" in text  # not "done, N candidate(s)"
    assert "LLM: 3 calls" in text and "yield 0% of attempts" in text
    figures = injection.batch_figures(batch)
    assert figures["cost_usd"] > 0 and figures["cost_per_valid_usd"] is None and figures["candidates"] == 0
