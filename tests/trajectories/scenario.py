"""A small bug-fix exchange for the real teacher CLIs, scripted on FakeUpstream.

The workspace holds ``pricing.py`` with an inverted discount and a plain-assert test. The
scripted model reads the file, fixes it, runs the test and reports — through each CLI's own
tools (Claude Code: Read / Edit / Bash; Codex: exec_command). Side calls the CLIs make
without tools (titles, summaries) get a short text reply without consuming a step, so the
script cannot shift. Used by the runner tests and by ``capture_fixtures.py``.
"""
from __future__ import annotations

import threading
from pathlib import Path

BUGGY = '''def discounted(price: float, percent: float) -> float:
    """Price after taking ``percent`` off."""
    return round(price * (1 + percent / 100), 2)
'''
FIXED_LINE = "    return round(price * (1 - percent / 100), 2)"
TEST = '''from pricing import discounted

assert discounted(200.0, 10) == 180.0, discounted(200.0, 10)
assert discounted(99.99, 0) == 99.99
print("2 checks passed")
'''
TASK = "test_pricing.py fails: discounted() adds the discount instead of taking it off. Fix pricing.py and run the test."


def make_workspace(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "pricing.py").write_text(BUGGY)
    (path / "test_pricing.py").write_text(TEST)
    return path


def steps(harness: str, workspace: Path):
    """The scripted replies (FakeUpstream ``Reply`` objects) for one harness."""
    from tests.llm.fake_upstream import Reply

    if harness == "claude_code":
        return [
            Reply(text="Let me look at the pricing code.",
                  tool_calls=[{"id": "toolu_01Read", "name": "Read", "arguments": {"file_path": str(workspace / "pricing.py")}}]),
            Reply(tool_calls=[{"id": "toolu_02Edit", "name": "Edit", "arguments": {
                "file_path": str(workspace / "pricing.py"),
                "old_string": "price * (1 + percent / 100)", "new_string": "price * (1 - percent / 100)"}}]),
            Reply(tool_calls=[{"id": "toolu_03Bash", "name": "Bash", "arguments": {"command": "python3 test_pricing.py", "description": "Run the test"}}]),
            Reply(text="Fixed: `discounted()` now subtracts the percentage; the test passes."),
        ]
    return [
        Reply(text="Let me look at the pricing code.", tool_calls=[{"id": "call_01cat", "name": "exec_command", "arguments": {"cmd": "cat pricing.py"}}]),
        Reply(tool_calls=[{"id": "call_02sed", "name": "exec_command", "arguments": {
            "cmd": "sed -i 's/price \\* (1 + percent/price * (1 - percent/' pricing.py && grep -n 'return' pricing.py"}}]),
        Reply(tool_calls=[{"id": "call_03test", "name": "exec_command", "arguments": {"cmd": "python3 test_pricing.py"}}]),
        Reply(text="Fixed: `discounted()` now subtracts the percentage; the test passes."),
    ]


class ScriptedAgentModel:
    """FakeUpstream fallback: the next step for every request that offers tools, a short text
    for side calls that do not."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.served = 0
        self.side_calls = 0
        self._lock = threading.Lock()

    def __call__(self, recorded):
        from tests.llm.fake_upstream import Reply

        body = recorded.body if isinstance(recorded.body, dict) else {}
        with self._lock:
            if not body.get("tools"):
                self.side_calls += 1
                return Reply(text="Fixing the discount")
            if self.served >= len(self.replies):
                return Reply(text="Done.")
            reply = self.replies[self.served]
            self.served += 1
            return reply
