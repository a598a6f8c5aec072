"""Feature removal (after BugPilot / SSR; plain Python, no Django).

The model sees one function, its file and the tests that cover it, and returns the function
with one feature removed or broken — a branch, an option, a special case dropped — while the
signature stays the same so the rest of the code still imports and runs. No verifier comes
from the model: the covering tests that now fail are the verifier (as in ``rewrite`` mode), and
the problem statement is made from their failing output once the bug is planted.

Reply format: one ``### IMPLEMENTATION`` section with the fenced function (the rewrite
format, so ``reply.parse_reply(mode="rewrite")`` checks it: one def of the same name,
the same signature, an actual change). The loop, splicing and the diff are ``llm_injector.inject``'s.
"""
from __future__ import annotations

import textwrap
from typing import Callable

from episodes.engine import prompts
from episodes.engine.inject.llm_injector import InjectionOutcome, InjectionRequest, _file_context, _tests_context, inject

def build_prompt(request: InjectionRequest) -> tuple[str, str]:
    name = request.qualname.split(".")[-1]
    tests = _tests_context(request.covering_tests, request.test_sources)
    covering = "\n".join(f"- {t}" for t in request.covering_tests) or "- (none listed)"
    user = (
        f"Remove or break one feature of `{request.qualname}` in `{request.path}`: drop a branch, an option, "
        "a special case or a step, as a refactor that forgot about it would.\n\n"
        f"File `{request.path}`:\n"
        f"```python\n{_file_context(request.file_source, request.start_line, request.end_line).rstrip()}\n```\n\n"
        f"The function (lines {request.start_line}-{request.end_line}):\n"
        f"```python\n{textwrap.dedent(request.function_source).rstrip()}\n```\n\n"
        f"Tests that exercise it:\n{covering}\n\n"
        + (f"Their source:\n\n{tests}\n\n" if tests else "")
        + "Requirements:\n"
        "- Keep the name and the signature exactly; the code must still import and run.\n"
        "- At least one of the tests above must fail because the feature is gone; most should keep passing.\n"
        "- No comments pointing at the removal, no exceptions raised on purpose.\n\n"
        + prompts.render("feature_removal_format", name=name)
    )
    return prompts.render("feature_removal_system"), user


def remove(client, request: InjectionRequest, retries: int = 2, on_call: Callable | None = None) -> InjectionOutcome:
    """``llm_injector.inject`` with the removal prompt; ``request.mode`` must be ``rewrite`` (the
    reply format), so the verifier is the covering tests."""
    if request.mode != "rewrite":
        raise ValueError("feature removal answers in the rewrite format: request.mode must be 'rewrite'")
    return inject(client, request, retries=retries, on_call=on_call, prompt=build_prompt)
