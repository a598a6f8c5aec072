"""Solve batches end to end on the real database, sandbox and Redis: the built-in agent talks to
a scripted upstream through the recording gateway, every call lands in LLMCall with tokens, the
grader's verdict becomes the reward; k=2 attempts run in a real RQ worker process; dead jobs
are swept; external harnesses fail clearly when their CLI is missing."""
import subprocess

import pytest
from django.core.management import call_command

from episodes.solving import episodes as solving
from episodes.engine.solve.agent.tools import TOOL_SCHEMAS
from episodes.models import Bug, Episode, LLMCall, LLMEndpoint, SolveBatch, Teacher

from tests.llm.fake_upstream import FakeUpstream, Reply

from tests.workers import manage, worker_env

from tests.factories import policy
from .test_redteam import FORGE_REPORTS

pytestmark = pytest.mark.django_db(transaction=True)  # the gateway records from its own threads


@pytest.fixture
def upstream():
    with FakeUpstream() as up:
        yield up


def make_teacher(upstream, protocol="openai_chat", harness="builtin", **config) -> Teacher:
    endpoint = LLMEndpoint.objects.create(
        name=f"fake-{protocol}", protocol=protocol, base_url=upstream.url, model="fake-model",
        api_key="sk-real-upstream-key-123", usd_per_mtok_in=2, usd_per_mtok_out=10,
    )
    return Teacher.objects.create(name=f"t-{protocol}-{harness}", endpoint=endpoint, harness=harness, provider="fake",
                                  model="fake-model", terms_allow_training=True, config=config)


def test_an_episode_through_the_gateway_is_recorded_graded_and_solved(approved_bug, engine_bug, upstream, redis_conn):
    upstream.fallback = policy(engine_bug.sample)
    teacher = make_teacher(upstream)
    batch = solving.launch(teacher, [approved_bug], k=1, sync=True)
    episode = Episode.objects.get(solve_batch=batch)
    assert episode.status == "solved", (episode.error, episode.grading.get("reason"))
    assert episode.reward == 1.0 and episode.exit_reason == "submitted"
    assert "+            if weight_grams <= band.max_grams:" in episode.final_patch
    assert episode.grading["reward"] is True and [r["scope"] for r in episode.grading["runs"]] == ["verifier", "tests"]
    # every call went through the gateway and is stored with its tokens, in order
    calls = list(LLMCall.objects.filter(episode=episode).order_by("sequence"))
    assert [c.sequence for c in calls] == [1, 2, 3]
    assert [(c.tokens_in, c.tokens_out) for c in calls] == [(500, 20), (900, 40), (1000, 5)]
    assert all(c.path == "/v1/chat/completions" and c.status_code == 200 for c in calls)
    assert (episode.tokens_in, episode.tokens_out, episode.steps) == (2400, 65, 3)
    assert float(episode.cost_usd) == pytest.approx((2400 * 2 + 65 * 10) / 1e6)
    # the upstream saw the real key; the agent only ever had its episode token
    assert all(r.headers["authorization"] == "Bearer sk-real-upstream-key-123" for r in upstream.requests)
    assert "sk-real-upstream-key-123" not in str(calls[0].request) + str(episode.trajectory)
    assert episode.agent_stats["gateway"] is True and episode.agent_stats["malformed"] == 0
    # the canonical trajectory: the whole conversation with the tool schemas
    traj = episode.trajectory
    assert [m["role"] for m in traj["messages"]] == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert traj["messages"][-1]["tool_calls"][0]["function"] == {"name": "submit", "arguments": {}}
    assert [t["function"]["name"] for t in traj["tools"]] == [t["function"]["name"] for t in TOOL_SCHEMAS]
    assert episode.gateway_token_hash and Episode.objects.by_gateway_token("bfgw_anything") is None


def test_a_wrong_fix_is_unsolved_and_an_upstream_failure_is_failed(approved_bug, engine_bug, upstream, redis_conn):
    upstream.fallback = policy(engine_bug.sample, wrong_for_attempts={1})
    teacher = make_teacher(upstream, protocol="anthropic", max_steps=10)
    wrong = Episode.objects.get(solve_batch=solving.launch(teacher, [approved_bug], k=1, sync=True))
    assert wrong.status == "unsolved" and wrong.reward == 0.0 and wrong.exit_reason == "submitted"
    assert "verifier did not pass" in wrong.grading["reason"]
    assert LLMCall.objects.filter(episode=wrong, path="/v1/messages").count() == 3
    upstream.fallback = Reply.error(401, "invalid x-api-key")
    broken = Episode.objects.get(solve_batch=solving.launch(teacher, [approved_bug], k=1, sync=True))
    assert broken.status == "failed" and broken.exit_reason == "error" and "invalid x-api-key" in broken.error
    assert broken.reward == 0.0 and broken.grading["reason"] == "no change to a source file"
    assert LLMCall.objects.get(episode=broken).status_code == 401


def test_k2_batch_runs_in_a_real_solve_worker(approved_bug, engine_bug, upstream, redis_conn, settings):
    upstream.fallback = policy(engine_bug.sample, wrong_for_attempts={2})
    teacher = make_teacher(upstream)
    batch = solving.launch(teacher, Bug.objects.filter(pk=approved_bug.pk), k=2)
    episodes = list(batch.episodes.order_by("attempt"))
    assert [(e.attempt, e.status) for e in episodes] == [(1, "queued"), (2, "queued")]
    assert all(e.job_id for e in episodes)
    assert solving.batch_figures(batch)["done"] == 0
    proc = manage("rqworker", "solve", "--burst", env=worker_env(settings), stdout=subprocess.PIPE,
                  stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    statuses = [e.status for e in batch.episodes.order_by("attempt")]
    assert statuses == ["solved", "unsolved"], (out[-3000:], list(batch.episodes.values_list("error", flat=True)))
    assert LLMCall.objects.filter(episode__solve_batch=batch).count() == 6
    f = solving.batch_figures(batch)
    assert (f["done"], f["solved"], f["graded"], f["solve_rate"]) == (2, 1, 2, 0.5)
    assert (f["pass_at_1"], f["pass_at_k"], f["k"], f["bugs_solved"]) == (0.5, 1.0, 2, 1)
    assert f["tokens"] == 2 * (2400 + 65) and f["tokens_per_solved_bug"] == f["tokens"]
    assert solving.teacher_figures(teacher)["solve_rate"] == 0.5


def test_the_solve_command_runs_a_batch_and_prints_the_solve_rate(approved_bug, engine_bug, upstream, redis_conn, capsys):
    upstream.fallback = policy(engine_bug.sample)
    teacher = make_teacher(upstream)
    call_command("solve", "--repo", "cartcalc", "--teacher", teacher.name, "-k", "1", "--sync")
    out = capsys.readouterr().out
    assert "solved 1/1 graded episodes, solve rate 100%" in out and "pass@1 100%" in out
    assert SolveBatch.objects.get().selection == {"ids": [], "repository": "cartcalc", "approved": True}


def test_launch_refuses_what_cannot_run(approved_bug, upstream):
    teacher = make_teacher(upstream)
    with pytest.raises(solving.SolveError, match="selection is empty"):
        solving.launch(teacher, [], k=1)
    with pytest.raises(solving.SolveError, match="between 1 and 100"):
        solving.launch(teacher, [approved_bug], k=0)
    responses = LLMEndpoint.objects.create(name="resp", protocol="openai_responses", base_url=upstream.url, model="m")
    bad = Teacher.objects.create(name="bad", endpoint=responses, harness="builtin")
    with pytest.raises(solving.SolveError, match="built-in agent speaks"):
        solving.launch(bad, [approved_bug], k=1)
    assert not Episode.objects.exists()


def test_an_external_harness_without_its_cli_fails_clearly(approved_bug, upstream, redis_conn, monkeypatch, tmp_path):
    monkeypatch.setenv("BUGFORGE_AGENTS_DIR", str(tmp_path))  # no node_modules there
    teacher = make_teacher(upstream, protocol="anthropic", harness="claude_code")
    episode = Episode.objects.get(solve_batch=solving.launch(teacher, [approved_bug], k=1, sync=True))
    assert episode.status == "failed" and episode.exit_reason == "error"
    assert "Claude Code CLI not installed" in episode.error


def test_episodes_whose_job_died_are_swept(approved_bug, upstream, redis_conn):
    teacher = make_teacher(upstream)
    gone = Episode.objects.create(bug=approved_bug, teacher=teacher, status="running", job_id="no-such-job")
    batch = solving.launch(teacher, [approved_bug], k=1)  # queued, with a real job that nobody ran yet
    queued = batch.episodes.get()
    assert Episode.objects.sweep_stale(stale_after_s=3600) == [(gone.pk, "its job no-such-job no longer exists")]
    gone.refresh_from_db()
    assert gone.status == "failed" and gone.exit_reason == "error" and "episode interrupted" in gone.error
    # a job that is alive but silent too long
    Episode.objects.filter(pk=queued.pk).update(status="running", heartbeat_at="2020-01-01T00:00:00Z")
    [(pk, why)] = Episode.objects.sweep_stale(stale_after_s=3600)
    assert pk == queued.pk and "no sign of life" in why
    # and a worker that picks up a swept episode leaves it alone
    assert solving.run_episode(queued.pk) == "failed"


def test_a_running_episode_beats_while_its_teacher_gives_no_sign_of_life(approved_bug, upstream):
    import time

    teacher = make_teacher(upstream)
    episode = Episode.objects.create(bug=approved_bug, teacher=teacher, status="running",
                                     heartbeat_at="2020-01-01T00:00:00Z")
    with solving._heartbeat(episode, every_s=0.05):
        deadline = time.monotonic() + 10
        while Episode.objects.get(pk=episode.pk).heartbeat_at.year == 2020 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert Episode.objects.get(pk=episode.pk).heartbeat_at.year > 2020


def hack_policy(payload: str):
    """A scripted teacher that games the grader instead of fixing the bug: it appends
    ``payload`` to the package's __init__.py with the shell tool, then submits."""
    def reply(recorded):
        messages = recorded.body["messages"]
        if not any(m["role"] == "tool" for m in messages):
            command = f"cat >> cartcalc/__init__.py <<'PAYLOAD'\n{payload}\nPAYLOAD"
            return Reply(tool_calls=[{"id": "h1", "name": "shell", "arguments": {"command": command}}])
        return Reply(tool_calls=[{"id": "h2", "name": "submit", "arguments": {}}])

    return reply


@pytest.mark.parametrize("policy_setting, integrity", [("refuse", "suspicious"), ("review", "tampered")])
def test_a_hacking_teacher_earns_nothing_and_never_reaches_an_sft_set(
        approved_bug, engine_bug, upstream, redis_conn, settings, policy_setting, integrity):
    from training.datasets import build_sft_dataset

    settings.BUGFORGE_SUSPICIOUS_EPISODES = policy_setting
    upstream.fallback = hack_policy(FORGE_REPORTS)
    teacher = make_teacher(upstream)
    episode = Episode.objects.get(solve_batch=solving.launch(teacher, [approved_bug], k=1, sync=True))
    assert episode.status == "unsolved" and episode.reward == 0.0, episode.grading["reason"]
    assert episode.integrity == integrity and episode.exit_reason == "submitted"
    if integrity == "suspicious":
        assert any(f["rule"] == "uses sys.modules" for f in episode.grading["suspicious"])
    else:  # graded anyway: the canary gave it away
        assert episode.grading["tampered"] == "the canary test, which always fails, was reported passed"
    assert solving.teacher_figures(teacher)["solve_rate"] == 0.0
    # even asked to keep every reward, the dataset refuses the flagged episode
    with pytest.raises(ValueError, match=r"no successful episodes match these filters \(dropped: 1 suspicious\)"):
        build_sft_dataset(f"sft-hack-{policy_setting}", {"min_reward": 0, "heldout_fraction": 0})
