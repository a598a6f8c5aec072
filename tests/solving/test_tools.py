"""The agent's tools: clear errors for everything a model can get wrong, nothing outside the
workspace reachable, long outputs shortened, commands run in the real sandbox."""
import os

import pytest

from episodes.engine.solve.agent.tools import TOOL_SCHEMAS, Workbench, truncate
from episodes.engine.sandbox.base import Limits


@pytest.fixture
def bench(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "pkg").mkdir()
    (ws / "pkg/m.py").write_text("def f(x):\n    return x + 1\n\n\ndef g(x):\n    return x + 1\n")
    (tmp_path / "secret.txt").write_text("top secret\n")
    return Workbench(executor=None, workspace=ws)


def test_view_numbers_lines_and_lists_directories(bench):
    assert bench.call("view", {"path": "pkg/m.py", "start_line": 2, "end_line": 2}) == "     2\t    return x + 1"
    assert bench.call("view", {"path": "."}) == "pkg/"
    assert bench.call("view", {"path": "pkg/m.py", "start_line": 99}).startswith("error: start_line 99 is past the end")
    assert bench.call("view", {"path": "nope.py"}) == "error: nope.py does not exist"


def test_edit_replaces_exactly_one_occurrence(bench):
    out = bench.call("edit", {"path": "pkg/m.py", "old": "return x + 1", "new": "return x + 2"})
    assert out.startswith("error: the text to replace occurs 2 times in pkg/m.py (lines 2, 6)")
    out = bench.call("edit", {"path": "pkg/m.py", "old": "def g(x):\n    return x + 1", "new": "def g(x):\n    return x + 2"})
    assert out.startswith("edited pkg/m.py; lines 2-6 now read:")
    assert (bench.workspace / "pkg/m.py").read_text().endswith("return x + 2\n")
    out = bench.call("edit", {"path": "pkg/m.py", "old": "def f(x):\n  return x + 1", "new": "z"})
    assert out.startswith("error: the text to replace was not found")
    out = bench.call("edit", {"path": "pkg/m.py", "old": "  def f(x):  ", "new": "z"})
    assert "copy the exact indentation" in out
    assert bench.call("edit", {"path": "pkg/new.py", "old": "", "new": "X = 1\n"}) == "created pkg/new.py (1 lines)"
    assert bench.call("edit", {"path": "pkg/new.py", "old": "", "new": "X = 2\n"}).startswith("error: pkg/new.py already exists")
    assert bench.errors == 4 and bench.calls == 6


@pytest.mark.parametrize("path", ["../secret.txt", "/etc/passwd", "pkg/../../secret.txt", ".git/config", "link/secret.txt", "alias.txt"])
def test_nothing_outside_the_workspace_is_reachable(bench, path):
    os.symlink(bench.workspace.parent, bench.workspace / "link")
    os.symlink(bench.workspace.parent / "secret.txt", bench.workspace / "alias.txt")
    for tool, args in (("view", {"path": path}), ("edit", {"path": path, "old": "top", "new": "bottom"})):
        out = bench.call(tool, args)
        assert out.startswith("error:") and ("outside the repository" in out or "off limits" in out), out
    assert (bench.workspace.parent / "secret.txt").read_text() == "top secret\n"


def test_an_absolute_path_inside_the_workspace_is_fine(bench):
    assert bench.call("view", {"path": str(bench.workspace / "pkg/m.py"), "end_line": 1}) == "     1\tdef f(x):"


def test_bad_calls_are_error_texts_never_exceptions(bench):
    assert bench.call("nope", {}).startswith("error: unknown tool 'nope'; the tools are: edit, shell, submit, view")
    assert bench.call("view", "{not json").startswith("error: the arguments of view are not valid JSON")
    assert bench.call("view", [1, 2]) == "error: the arguments of view must be a JSON object, not list"
    assert bench.call("view", {"path": 3}) == "error: argument path of view must be a string, got int"
    assert bench.call("view", {"path": "pkg/m.py", "start_line": True}).startswith("error: argument start_line")
    assert bench.call("submit", None) == "submitted: your changes will now be graded" and bench.submitted


def test_schemas_are_openai_function_tools():
    # Alphabetical: the order TRL lists an environment's methods in (see grpo_env.BugEnvironment).
    assert [t["function"]["name"] for t in TOOL_SCHEMAS] == ["edit", "shell", "submit", "view"]
    assert all(t["type"] == "function" and t["function"]["parameters"]["type"] == "object" for t in TOOL_SCHEMAS)


def test_truncate_keeps_head_and_tail_and_says_how_much_was_cut():
    text = "".join(f"line {i}\n" for i in range(10_000))
    out = truncate(text, 1000)
    assert out.startswith("line 0\n") and out.endswith("line 9999\n")
    cut = len(text) - 1000
    assert f"[... {cut} characters cut ({len(text)} in all) ...]" in out
    assert truncate("short", 1000) == "short"


def test_shell_runs_in_the_sandbox_workspace(engine_bug):
    with engine_bug.checkout() as ws:
        bench = Workbench(engine_bug.executor, ws, Limits(timeout_s=5), environment=engine_bug.repo.environment,
                          max_output_chars=2000)
        out = bench.call("shell", {"command": "pwd; id -u; python -c 'import cartcalc; print(cartcalc.__name__)'; echo oops >&2; exit 3"})
        assert out.splitlines()[:4] == ["[exit code 3]", str(ws), "65534", "cartcalc"]
        assert out.endswith("[stderr]\noops")
        assert bench.call("shell", {"command": "curl -s https://example.com || python -c 'import socket; socket.create_connection((\"1.1.1.1\", 80), 2)'"}).startswith("[exit code 1]")
        long = bench.call("shell", {"command": "seq 1 100000"})
        assert "characters cut" in long and long.rstrip().endswith("100000")
        assert bench.call("shell", {"command": "sleep 30"}) == "[timed out after 5s]"
        assert bench.call("shell", {"command": "  "}) == "error: the command is empty"


def test_filesystem_traps_the_agent_set_are_error_texts(bench):
    """An agent that makes a symlink loop (or a name too long) and then views or edits it gets
    an error it can read; the episode goes on (before, the job died with RuntimeError)."""
    ws = bench.workspace
    os.symlink(ws / "loop_b", ws / "loop_a")
    os.symlink(ws / "loop_a", ws / "loop_b")
    answers = [bench.call("view", {"path": "loop_a"}), bench.call("view", {"path": "loop_a/deeper"}),
               bench.call("edit", {"path": "loop_b", "old": "", "new": "x"}),
               bench.call("edit", {"path": "loop_a", "old": "a", "new": "b"}),
               bench.call("view", {"path": "n" * 5000})]
    assert all(a.startswith("error: ") for a in answers), answers
    assert "Symlink loop" in answers[0] and "File name too long" in answers[-1]
    assert bench.errors == len(answers)
