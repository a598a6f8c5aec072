"""Episodes with recorded calls, for the viewer tests (page and browser)."""
from episodes.models import Bug, Episode, LLMCall, LLMEndpoint, Repository, Teacher

BUG_PATCH = "--- a/shipping.py\n+++ b/shipping.py\n@@ -1 +1 @@\n-    return 0 if total >= FREE_FROM else 5\n+    return 0 if total > FREE_FROM else 5\n"
FIX = "--- a/shipping.py\n+++ b/shipping.py\n@@ -1 +1 @@\n-    return 0 if total > FREE_FROM else 5\n+    return 0 if total >= FREE_FROM else 5\n"
TOOLS = [{"name": "bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]
LONG_OUTPUT = "\n".join(f"line {i} of the test log" for i in range(200))


def make_world():
    repo = Repository.objects.create(name="shop", source="/nowhere", pinned_commit="a" * 40)
    bugs = [Bug.objects.create(repository=repo, base_commit="a" * 40, patch=BUG_PATCH + f"# {i}\n", verifier="v") for i in range(2)]
    endpoint = LLMEndpoint.objects.create(name="up", protocol="anthropic", base_url="http://127.0.0.1:9", model="claude-x",
                                          api_key="sk-ant-REALKEY-never-shown-123456")
    unknown = Teacher.objects.create(name="cc", harness="claude_code", endpoint=endpoint, model="claude-x")
    trusted = Teacher.objects.create(name="local", harness="builtin", model="qwen", terms_allow_training=True)
    return {"bugs": bugs, "endpoint": endpoint, "unknown": unknown, "trusted": trusted}


def recorded_episode(world, **kw):
    """An episode whose trajectory is not stored: the page derives it from the recorded calls."""
    episode = Episode.objects.create(
        bug=world["bugs"][0], teacher=world["unknown"], status="solved", reward=1.0, exit_reason="finished",
        final_patch=FIX, steps=2, agent_events=[{"type": "system", "subtype": "init"}, {"type": "result", "num_turns": 2}],
        grading={"reward": True, "reason": "the verifier and all 2 FAIL_TO_PASS/PASS_TO_PASS tests pass", "patch": FIX,
                 "dropped": {"tests/test_shipping.py": "a test file"},
                 "runs": [{"scope": "verifier", "purpose": "grading", "outcome": "passed", "exit_code": 0, "killed_by": "",
                           "duration_s": 0.4, "log_excerpt": "VERIFIER OK", "tests": {}}],
                 "tests": {"tests/test_shipping.py::test_fifty": "passed"}},
        **kw,
    )
    first = [{"role": "user", "content": "Fix the shipping threshold."}]
    tool_use = [{"type": "text", "text": "Running the tests."},
                {"type": "tool_use", "id": "toolu_run", "name": "bash", "input": {"command": "pytest -q tests/test_shipping.py"}}]
    second = first + [{"role": "assistant", "content": tool_use},
                      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_run", "content": LONG_OUTPUT}]}]
    for seq, (messages, content, tin, tout) in enumerate([(first, tool_use, 111, 22), (second, [{"type": "text", "text": "All fixed."}], 333, 44)], 1):
        LLMCall.objects.create(
            episode=episode, endpoint=world["endpoint"], protocol="anthropic", path="/v1/messages?beta=true", streamed=True,
            sequence=seq, request={"model": "claude-x", "system": "You fix bugs.", "tools": TOOLS, "messages": messages,
                                   "metadata": {"api_key": "sk-client-secret-abcdef"}},
            response={"id": f"msg_{seq}", "type": "message", "role": "assistant", "content": content, "stop_reason": "end_turn"},
            raw_stream="event: message_start\ndata: {}\n\n", status_code=200, tokens_in=tin, tokens_out=tout,
            latency_ms=812.5, ttfb_ms=41.0,
        )
    return episode
