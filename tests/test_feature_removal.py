"""Feature removal (Bug.Method.LLM_REMOVE): the model drops a feature of a sample-repo function,
the covering tests that now fail are the verifier, and the batch yields a valid bug — against a
real local HTTP model server and the real sandbox."""
import pytest

from episodes.injection import batches as injection
from episodes.models import Bug, LLMEndpoint

from .llm.fake_upstream import FakeUpstream
from .llm.test_injector import KEY

pytestmark = pytest.mark.django_db

TARGET = "cartcalc/shipping.py::ShippingPolicy.cost"
REMOVED = '''\
def cost(self, weight_grams: int, order_value: Money) -> Money:
    if weight_grams < 0:
        raise ShippingError("weight must not be negative")
    if weight_grams == 0:
        return Money.zero(self.currency)
    band = self.band_for(weight_grams)
    if band is not None:
        return band.price
    if self.extra_per_kg is None:
        raise ShippingError(f"parcel of {weight_grams} g is too heavy")
    heaviest = self.bands[-1]
    excess = weight_grams - heaviest.max_grams
    started_kg = -(-excess // GRAMS_PER_KG)
    return heaviest.price + self.extra_per_kg * started_kg
'''


def impl(source):
    return f"### IMPLEMENTATION\n```python\n{source}```\n"


def test_removal_batch_yields_a_valid_llm_remove_bug(sample_repo, settings):
    settings.BUGFORGE_FLAKE_TARGET = 0.99  # one run a side
    with FakeUpstream() as upstream:
        ep = LLMEndpoint.objects.create(name="stub-remove", protocol="openai_chat", base_url=upstream.url,
                                        model="scripted-1", api_key=KEY)
        changed_signature = REMOVED.replace("order_value: Money)", "order_value: Money, strict=False)")
        upstream.script(impl(changed_signature), impl(REMOVED))
        batch = injection.start_batch(sample_repo, "llm_remove", 1, seed=2, endpoint=ep, targets=[TARGET], sync=True)
        prompt = upstream.requests[0].body["messages"][-1]["content"]
        retry = upstream.requests[1].body["messages"][-1]["content"]
    assert batch.status == "done", batch.error
    bug = Bug.objects.get(batch=batch)
    assert bug.status == "valid", (bug.invalid_reason, bug.error)
    assert bug.method == "llm_remove" and bug.operator == "remove" and bug.target == TARGET
    assert "-        if self.qualifies_for_free_shipping(order_value):" in bug.patch
    assert "pytest" in bug.verifier and "tests/test_shipping.py" in bug.verifier  # the existing tests verify
    assert any("free_shipping" in t for t in bug.fail_to_pass)
    assert bug.statement_source == "template" and bug.problem_statement
    assert "Remove or break one feature" in prompt and "signature" in retry
    row = next(r for r in injection.figures(sample_repo) if r["method"] == "llm_remove")
    assert (row["attempts"], row["valid"], row["llm_calls"]) == (1, 1, 2) and row["yield"] == 1.0


def test_llm_remove_is_offered_wherever_methods_are():
    assert Bug.Method.LLM_REMOVE in injection.METHODS and Bug.Method.LLM_REMOVE in injection.LLM_METHODS
