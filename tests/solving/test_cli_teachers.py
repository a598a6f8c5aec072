"""The real teacher CLIs (Claude Code, Codex: `npm ci --prefix agents`) as whole episodes: in the
sandbox, through the recording gateway, against a scripted upstream that drives each CLI's own
shell tool. What a user training on their episodes needs to hold:

* the workspace is a git repository of the buggy code: `git status` / `git diff` work inside
  the sandbox and show nothing but the agent's own change;
* the gateway's budget holds whatever the CLI does (step, token and cost limits);
* an upstream that is down makes an *error*, quickly, with the gateway's reason, and errors
  stay out of solve rate and pass@k;
* the CLI's session log is stored (secrets scrubbed, as everywhere) and re-imports to the
  trajectory the gateway recorded.
"""
import json
from datetime import timedelta

import pytest

from episodes.solving import episodes as solving
from episodes.engine.trajectories.importers import import_text
from episodes.engine.solve.runners import cli_path, missing_cli_message
from episodes.engine.trajectories.canonical import check_canonical
from episodes.models import Episode, LLMCall

from tests.llm.fake_upstream import Reply

from .test_solving import make_teacher, upstream  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db(transaction=True)

HARNESS = {  # shell tool, its command argument, protocol
    "claude_code": ("Bash", "command", "anthropic"),
    "codex": ("exec_command", "cmd", "openai_responses"),
}
GIT_LOOK = "git status --porcelain; echo '--'; git log --oneline | wc -l; echo '--'; git diff --stat"
FIX = "sed -i 's/if weight_grams < band.max_grams:/if weight_grams <= band.max_grams:/' cartcalc/shipping.py"
GIT_DIFF = "git status --porcelain; echo '--'; git diff"


def needs_cli(harness):
    if cli_path(harness) is None:
        pytest.skip(missing_cli_message(harness))


def tool_results(recorded) -> list[str]:
    """The tool outputs in a request the CLI sent, in order (Anthropic or Responses shape)."""
    body = recorded.body if isinstance(recorded.body, dict) else {}
    out = []
    for m in body.get("messages") or ():
        for block in m.get("content") if isinstance(m.get("content"), list) else ():
            if block.get("type") == "tool_result":
                content = block.get("content")
                out.append(content if isinstance(content, str) else "".join(p.get("text", "") for p in content or ()))
    for item in body.get("input") or ():
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            output = item.get("output")
            output = output if isinstance(output, str) else json.dumps(output)
            if output.startswith("Chunk ID:"):  # Codex's exec_command header (chunk, wall time, exit code)
                output = output.partition("\nOutput:")[2].removeprefix("\n")
            out.append(output)
    return out


def shell_script(harness, commands, final="Fixed the band boundary."):
    """A stateless scripted model: the n-th tool-offering request runs commands[n] with the
    CLI's shell tool; then a final text. Side calls (no tools) get a short text."""
    tool, arg, _ = HARNESS[harness]

    def reply(recorded):
        body = recorded.body if isinstance(recorded.body, dict) else {}
        if not body.get("tools"):
            return Reply(text="Fixing a boundary")
        done = len(tool_results(recorded))
        if done >= len(commands):
            return Reply(text=final)
        arguments = {arg: commands[done]}
        if harness == "claude_code":
            arguments["description"] = f"step {done + 1}"
        return Reply(tool_calls=[{"id": f"call_{done + 1:02d}", "name": tool, "arguments": arguments}],
                     tokens_in=100, tokens_out=10)

    return reply


def stored_text(episode) -> str:
    calls = LLMCall.objects.filter(episode=episode)
    return json.dumps([episode.agent_events, episode.agent_stats, episode.trajectory, episode.grading, episode.error,
                       episode.session_log, episode.final_patch,
                       [(c.request, c.response, c.raw_stream, c.error) for c in calls]])


@pytest.mark.parametrize("harness", ["claude_code", "codex"])
def test_a_cli_teacher_works_in_a_git_repository_and_its_run_is_kept(harness, approved_bug, upstream, redis_conn):
    needs_cli(harness)
    upstream.fallback = shell_script(harness, [GIT_LOOK, FIX, GIT_DIFF, "env"])
    teacher = make_teacher(upstream, protocol=HARNESS[harness][2], harness=harness, max_steps=10, max_wall_s=240)
    episode = Episode.objects.get(solve_batch=solving.launch(teacher, [approved_bug], k=1, sync=True))
    assert episode.status == "solved", (episode.error, episode.agent_stats.get("stderr_tail"), episode.grading.get("reason"))
    assert episode.exit_reason == "finished" and episode.reward == 1.0

    # what the CLI's shell saw, as the model got it back
    last = max((r for r in upstream.requests if isinstance(r.body, dict) and r.body.get("tools")),
               key=lambda r: len(tool_results(r)))
    look, _, diff, env = tool_results(last)
    status, commits, stat = (part.strip() for part in look.split("--"))
    assert (status, commits, stat) == ("", "1", "")  # a clean repository of one commit: the buggy code
    changed, patch = diff.split("--", 1)
    assert changed.strip() == "M cartcalc/shipping.py"  # only the agent's change
    assert "-            if weight_grams < band.max_grams:" in patch and "+            if weight_grams <= band.max_grams:" in patch
    assert patch.count("\n-") == 1 and patch.count("\n+") == 1 or patch.count("@@") == 2

    # the task told the CLI how it finishes: no `submit` tool to call
    task = json.dumps(upstream.requests[0].body)
    assert "end your turn" in task and "Call `submit`" not in task

    # steps, tokens and cost are the gateway's: one step per tool-offering call
    calls = list(LLMCall.objects.filter(episode=episode).order_by("sequence"))
    agent_calls = [c for c in calls if c.request.get("tools")]
    assert episode.steps == len(agent_calls) == 5
    assert episode.tokens_in == sum(c.tokens_in for c in calls)

    # the gateway token was in the CLI's environment: the agent printed it; nothing stored keeps it
    token = next(line.split("=", 1)[1] for line in env.splitlines()
                 if line.startswith(("ANTHROPIC_API_KEY=", "BUGFORGE_GATEWAY_TOKEN=")))
    assert token.startswith("bfgw_")
    assert token not in stored_text(episode)
    assert "[redacted]" in json.dumps(episode.agent_events)

    # the CLI's own session log is stored, and re-imports to the recorded trajectory
    assert episode.session_log
    imported = import_text(harness, episode.session_log).trajectory
    assert imported["messages"] == episode.trajectory["messages"]
    if harness == "claude_code":  # its log records the request's shape: system prompt and tool schemas
        assert imported["tools"] == episode.trajectory["tools"]
    else:  # a Codex rollout holds no tool schemas: importing it alone cannot give SFT data
        assert imported["tools"] == [] and "no tool schemas" in " ".join(check_canonical(imported))
    assert check_canonical(episode.trajectory) == []


def test_a_downloaded_session_log_and_diff_import_and_grade_as_the_episode(approved_bug, upstream, redis_conn, client,
                                                                           tmp_path):
    """What staff can take away from an episode page — the CLI's log and the agent's diff — goes
    back in with `manage.py import_episodes --patch … --grade`: the same conversation, the same
    reward."""
    from django.contrib.auth.models import User
    from django.core.management import call_command

    harness = "claude_code"
    needs_cli(harness)
    upstream.fallback = shell_script(harness, [FIX])
    teacher = make_teacher(upstream, protocol=HARNESS[harness][2], harness=harness, max_wall_s=240)
    episode = Episode.objects.get(solve_batch=solving.launch(teacher, [approved_bug], k=1, sync=True))
    assert episode.status == "solved", episode.error
    client.force_login(User.objects.create_user("viewer"))
    page = client.get(f"/episodes/{episode.pk}/").content.decode()
    assert f"/episodes/{episode.pk}/session-log/" in page and "import_episodes --format claude_code" in page
    download = client.get(f"/episodes/{episode.pk}/session-log/")
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="episode-{episode.pk}-claude_code.jsonl"'
    log, diff = tmp_path / "session.jsonl", tmp_path / "fix.diff"
    log.write_bytes(download.content)
    diff.write_text(episode.final_patch)

    call_command("import_episodes", "--format", harness, "--teacher", "imported-cc", "--bug", str(approved_bug.pk),
                 "--patch", str(diff), "--grade", str(log), stdout=open(tmp_path / "out.txt", "w"))
    imported = Episode.objects.get(teacher__name="imported-cc")
    assert imported.trajectory["messages"] == episode.trajectory["messages"]
    assert (imported.status, imported.reward) == ("solved", 1.0), imported.grading.get("reason")
    # and a page without a session log says so
    assert client.get(f"/episodes/{imported.pk}/session-log/").status_code == 404


LIMITS = [
    ("codex", {"max_steps": 2}, "step_limit"),
    ("claude_code", {"max_tokens": 150}, "token_limit"),
    ("claude_code", {"max_cost_usd": 0.0005}, "cost_limit"),
    ("codex", {"max_cost_usd": 0.0005}, "cost_limit"),
]


def assert_admitted_under_budget(forwarded, spent, limit):
    """Each call was let through while the calls finished before it started stayed under the
    limit: calls in flight at once (a CLI's side calls) are counted when they end (budget.py)."""
    for call in forwarded:
        started = call.created_at - timedelta(milliseconds=call.latency_ms or 0)
        assert sum(spent(c) for c in forwarded if c.created_at < started) < limit, call.sequence


@pytest.mark.parametrize("harness, limits, reason", LIMITS)
def test_the_gateway_holds_a_cli_teacher_to_its_budget(harness, limits, reason, approved_bug, upstream, redis_conn):
    """A model that never stops calling tools: the CLI is cut off at the budget, the episode
    ends with that limit and is graded (unsolved), whatever the CLI reported."""
    needs_cli(harness)
    upstream.fallback = shell_script(harness, ["ls"] * 50)
    teacher = make_teacher(upstream, protocol=HARNESS[harness][2], harness=harness, max_wall_s=240, **limits)
    episode = Episode.objects.get(solve_batch=solving.launch(teacher, [approved_bug], k=1, sync=True))
    assert (episode.status, episode.exit_reason) == ("unsolved", reason), episode.error
    assert episode.reward == 0.0 and episode.grading.get("reason")  # graded
    calls = list(LLMCall.objects.filter(episode=episode).order_by("sequence"))
    refused = [c for c in calls if c.refused]
    assert refused and all(c.refused == reason and c.status_code == 400 for c in refused)
    forwarded = [c for c in calls if not c.refused]
    assert len(forwarded) == len([r for r in upstream.requests if r.method == "POST"])
    if reason == "step_limit":
        assert episode.steps == 2
    if reason == "token_limit":
        assert_admitted_under_budget(forwarded, lambda c: c.tokens_in + c.tokens_out, 150)
        assert 150 <= episode.tokens_in + episode.tokens_out
    if reason == "cost_limit":
        assert_admitted_under_budget(forwarded, lambda c: float(c.cost_usd), 0.0005)
        assert float(episode.cost_usd) >= 0.0005


@pytest.mark.parametrize("harness", ["claude_code", "codex"])
def test_an_upstream_that_is_down_is_an_error_not_a_failed_attempt(harness, approved_bug, upstream, redis_conn):
    needs_cli(harness)
    upstream.fallback = lambda recorded: Reply.error(500, "upstream exploded")
    teacher = make_teacher(upstream, protocol=HARNESS[harness][2], harness=harness, max_wall_s=240)
    episode = Episode.objects.get(solve_batch=solving.launch(teacher, [approved_bug], k=1, sync=True))
    assert (episode.status, episode.exit_reason) == ("failed", "error")
    first_line = episode.error.splitlines()[0]
    assert first_line == "upstream failure: HTTP 500: upstream exploded", episode.error
    assert "Reading additional input from stdin" not in episode.error
    # then the CLI's own words, readable: the refusal that stopped it
    assert "upstream failed 3 times in a row" in episode.error.splitlines()[1]
    assert '{"error"' not in episode.error
    # the gateway gave up after three failures in a row: the CLI's own retries were cut short
    assert len(upstream.requests) == 3
    assert LLMCall.objects.filter(episode=episode, refused="upstream_down").exists()

    figures = solving.teacher_figures(teacher)
    assert (figures["graded"], figures["solve_rate"], figures["pass_at_1"], figures["errors"]) == (0, None, None, 1)
    assert figures["error_reasons"] == [(first_line, 1)]
