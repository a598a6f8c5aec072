"""Issue text from a bug's patch and failing output: the prompt, every leak kind, the
underspecification flag, malformed replies and regeneration, over the real client and a
scripted local model server."""
import pytest

from episodes.engine.inject import issue_text
from episodes.engine.inject.issue_text import IssueContext, MalformedStatement
from episodes.engine.validate.validator import pytest_verifier
from episodes.engine.llm import EndpointConfig, LLMClient

PATCH = """\
diff --git a/cartcalc/shipping.py b/cartcalc/shipping.py
--- a/cartcalc/shipping.py
+++ b/cartcalc/shipping.py
@@ -40,6 +40,6 @@ class ShippingPolicy:
     def band_for(self, weight_grams: int) -> Optional[WeightBand]:
         \"\"\"The first (lightest) band the parcel fits into, if any.\"\"\"
         for band in self.bands:
-            if weight_grams <= band.max_grams:
+            if weight_grams < band.max_grams:
                 return band
         return None
"""
OUTPUT = """\
    def test_weight_bands_and_surcharge():
>       assert policy.band_for(500).name == "small"
E       AssertionError: assert 'medium' == 'small'
cartcalc/shipping.py:43: in band_for
            if weight_grams < band.max_grams:
"""
VERIFIER = 'from cartcalc.shipping import DEFAULT_SHIPPING as p\nassert p.band_for(500).name == "small", "parcel at the small limit"\n'
CTX = IssueContext(PATCH, OUTPUT, ["tests/test_shipping.py::test_weight_bands_and_surcharge"], VERIFIER,
                   "cartcalc/shipping.py::ShippingPolicy.band_for")

CLEAN = """\
A parcel that weighs exactly 500 g is charged as a medium parcel.

To reproduce: call `DEFAULT_SHIPPING.cost(...)` for a cart whose parcel weighs 500 g.
I expected the small-parcel price, since 500 g is the documented small limit, but I got
the medium price instead.
"""


def reply(text):
    return f"### STATEMENT\n{text}"


def client(upstream):
    return LLMClient(EndpointConfig("openai_chat", upstream.url, "m", api_key="sk-x"))


def test_prompt_per_style_scrubs_the_patched_line_from_the_output():
    system, user = issue_text.build_prompt(CTX, "traceback")
    assert "### STATEMENT" in user and "AssertionError: assert 'medium' == 'small'" in user
    output_part = user.split("What failing code printed:")[1]
    assert "weight_grams < band.max_grams" not in output_part  # the buggy line is out of the output
    assert "test_weight_bands_and_surcharge" not in output_part
    _, symptom = issue_text.build_prompt(CTX, "symptom")
    assert "Do not mention cartcalc/shipping.py" in symptom and "no traceback" not in symptom
    assert "may name the public function" in issue_text.build_prompt(CTX, "function")[1]
    with pytest.raises(ValueError):
        issue_text.build_prompt(CTX, "poem")


def test_clean_text_passes_and_is_specified():
    assert issue_text.leaks(CLEAN, CTX, "symptom") == []
    assert issue_text.underspecified(CLEAN) == []


@pytest.mark.parametrize("text,kind", [
    ("Charged wrongly; the code does `if weight_grams < band.max_grams:` here.", "quotes a patched line"),
    ("Wrong band: if weight_grams <= band.max_grams: was the old behaviour.", "quotes a patched line"),
    ("It reports parcel at the small limit as wrong.", "quotes the verifier"),
    ("This is what test_weight_bands_and_surcharge shows.", "quotes the verifier"),
    ("The bug is in the shipping band lookup.", "says where the bug is"),
    ("The fix is to compare inclusively.", "gives the fix"),
    ("Change `<` to `<=` and it works.", "says what to change"),
    ("Something in cartcalc/shipping.py is off.", "names the changed file"),
    ("Something in shipping.py is off.", "names the changed file"),
    ("Calling band_for(500) gives the medium band.", "names the changed function"),
    ("Run the tests and you will see.", "tells the reader to run tests"),
])
def test_each_leak_kind_is_caught(text, kind):
    found = issue_text.leaks(text, CTX, "symptom")
    assert any(f.startswith(kind) for f in found), found


def test_function_style_may_name_the_function_but_not_the_line():
    assert issue_text.leaks("Calling band_for(500) gives the medium band.", CTX, "function") == []
    assert issue_text.leaks("Calling band_for(500) gives the medium band.", CTX, "traceback") == []


def test_pytest_verifier_node_ids_count_as_verifier_content():
    ctx = IssueContext(PATCH, OUTPUT, [], pytest_verifier(["tests/test_shipping.py::test_free_shipping_threshold"]))
    assert any("verifier" in f or "test" in f for f in issue_text.leaks("see test_free_shipping_threshold", ctx, "function"))


def test_underspecified_reasons():
    reasons = issue_text.underspecified("Shipping is broken.")
    assert any(r.startswith("too short") for r in reasons)
    assert "no expected-vs-actual behaviour" in reasons and any(r.startswith("no reproduction") for r in reasons)
    long_vague = "Shipping costs look strange to me lately and my customers are unhappy about them. " * 3
    assert issue_text.underspecified(long_vague) == ["no expected-vs-actual behaviour",
                                                     "no reproduction (no snippet, call or steps)"]


def test_malformed_reply_errors_are_clear():
    with pytest.raises(MalformedStatement, match="no '### STATEMENT' section"):
        issue_text.parse_reply("Here is your issue: shipping is broken")
    with pytest.raises(MalformedStatement, match="empty"):
        issue_text.parse_reply("### STATEMENT\n\n")
    with pytest.raises(MalformedStatement, match="2 '### STATEMENT' sections"):
        issue_text.parse_reply("### STATEMENT\na\n### STATEMENT\nb")
    assert issue_text.parse_reply("### STATEMENT\n```\nhello there\n```\n") == "hello there\n"


def test_write_retries_on_leak_and_on_malformed(fake_upstream):
    fake_upstream.script("no header", reply("The fix is to use <= in band_for."), reply(CLEAN))
    result = issue_text.write(client(fake_upstream), CTX, "symptom", attempts=3)
    assert result.ok and result.text.strip() == CLEAN.strip() and result.leaks == []
    assert result.attempts == 3 and "malformed reply" in result.failures[0] and "leaks" in result.failures[1]
    retry = fake_upstream.requests[2].body["messages"][-1]["content"]
    assert "gives the bug away" in retry and "gives the fix" in retry
    assert "AssertionError" in fake_upstream.requests[0].body["messages"][-1]["content"]


def test_write_keeps_the_least_leaky_text_with_its_flags(fake_upstream):
    fake_upstream.script(reply("The fix is to change < to <= in shipping.py."), reply("Bad band. The fix is simple."))
    result = issue_text.write(client(fake_upstream), CTX, "symptom", attempts=2)
    assert result.ok and result.text.startswith("Bad band") and result.leaks
    assert result.flags["underspecified"] is True and result.flags["leaks"] == result.leaks


def test_write_reports_failure_when_nothing_parses(fake_upstream):
    fake_upstream.script("nope", "still nope")
    result = issue_text.write(client(fake_upstream), CTX, "symptom", attempts=2)
    assert not result.ok and len(result.failures) == 2
