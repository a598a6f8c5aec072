"""The prompt templates (episodes/engine/prompts/): each renders with the fields its caller
passes, a missing field is a clear error, and the built prompts are byte-identical to the text
the modules built before the templates moved (prompts_golden.json, captured then)."""
import json
from pathlib import Path

import pytest

from episodes.engine import prompts
from episodes.engine.inject import feature_removal, issue_text
from episodes.engine.inject.llm_injector import InjectionRequest, build_prompt
from episodes.engine.solve import task_format

# the fields each caller passes (a template must need no other)
CALLER_FIELDS = {
    "agent_system": {},
    "agent_task": {"problem": "p", "finish": "f"},
    "feature_removal_format": {"name": "n"},
    "feature_removal_system": {},
    "inject_modify_format": {"name": "n", "qualname": "q"},
    "inject_rewrite_format": {"name": "n"},
    "inject_rewrite_system": {},
    "inject_system": {},
    "issue_text_system": {},
}

SRC = (
    "import math\n\n\nclass Box:\n    def size(self, n):\n        \"\"\"Size.\"\"\"\n"
    "        if n > 3:\n            return n * 2\n        return n\n"
)
TESTS = {"tests/test_box.py": "from box import Box\n\ndef test_size():\n    assert Box().size(4) == 8\n"}
PATCH = (
    "--- a/box.py\n+++ b/box.py\n@@ -7,3 +7,3 @@ class Box:\n     def size(self, n):\n"
    "-        if n > 3:\n+        if n >= 3:\n             return n * 2\n"
)


def test_every_template_renders_with_its_callers_fields():
    assert prompts.names() == sorted(CALLER_FIELDS)
    for name, fields in CALLER_FIELDS.items():
        text = prompts.render(name, **fields)
        assert text and "{" not in text, name


def test_a_missing_field_is_a_clear_error():
    with pytest.raises(prompts.MissingPromptField, match="'inject_modify_format' needs the field 'qualname'"):
        prompts.render("inject_modify_format", name="size")


def test_built_prompts_match_the_text_before_templates():
    def request(mode):
        return InjectionRequest.for_function(
            mode, "box.py", "Box.size", SRC, covering_tests=["tests/test_box.py::test_size"], test_sources=TESTS, seed=3
        )

    built = {mode: list(build_prompt(request(mode))) for mode in ("modify", "rewrite")}
    removal = InjectionRequest.for_function(
        "rewrite", "box.py", "Box.size", SRC, covering_tests=["tests/test_box.py::test_size"], test_sources=TESTS
    )
    built["removal"] = list(feature_removal.build_prompt(removal))
    context = issue_text.IssueContext(patch=PATCH, test_output="E   assert 6 == 3\nE    +  where 6 = size(3)\n")
    for style in issue_text.STYLES:
        built["issue_" + style] = list(issue_text.build_prompt(context, style))
    built["agent"] = task_format.prompt_messages("x fails")
    built["agent_cli"] = task_format.task_prompt("", harness="codex")
    assert built == json.loads((Path(__file__).parent / "prompts_golden.json").read_text())
