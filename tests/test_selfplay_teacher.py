"""Self-play with a real ``teacher:`` solver: procedural bugs planted and validated in the real
sandbox, then attempted by the built-in agent whose model is the stub LLM server (through the
recording gateway), graded for real. Each graded episode is one SolveAttempt under the round's
self-play key; the bug's solve figures and the round's hit rate come from those rows."""
from __future__ import annotations

import pytest
from django.db import connection

from episodes.injection import selfplay
from episodes.models import Bug, Episode, LLMEndpoint, SelfPlay, SolveAttempt, Teacher

from tests.llm.fake_upstream import FakeUpstream, Reply

pytestmark = pytest.mark.django_db(transaction=True)  # the gateway and the stub answer from their own threads


def reverse_edit(patch: str) -> dict:
    """The edit that undoes a one-hunk patch: its buggy side replaced by its original side."""
    path, buggy, fixed, in_hunk = None, [], [], False
    for line in patch.splitlines():
        if line.startswith("+++ "):
            path = line[4:].removeprefix("b/")
        elif line.startswith("@@"):
            assert not in_hunk, "one hunk expected"
            in_hunk = True
        elif in_hunk and line[:1] in (" ", "+", "-"):
            if line[0] != "-":
                buggy.append(line[1:])
            if line[0] != "+":
                fixed.append(line[1:])
    return {"path": path, "old": "\n".join(buggy), "new": "\n".join(fixed)}


def solves(episode: Episode) -> bool:
    """The stub's skill: attempt 1 always fixes the bug; attempt 2 only when the bug's id is even."""
    return episode.attempt == 1 or episode.bug_id % 2 == 0


def stub_model(recorded):
    """A stateless model: its first turn fixes the running episode's bug (or not), then it submits."""
    if any(m["role"] == "tool" for m in recorded.body["messages"]):
        return Reply(tool_calls=[{"id": "c2", "name": "submit", "arguments": {}}], tokens_in=900, tokens_out=5)
    try:  # self-play runs its episodes one at a time: the running one is asking
        episode = Episode.objects.select_related("bug").get(status=Episode.Status.RUNNING)
        fix = solves(episode)
        edit = reverse_edit(episode.bug.patch)
    finally:
        connection.close()  # this server thread's own connection
    if not fix:
        return Reply(tool_calls=[{"id": "c1", "name": "submit", "arguments": {}}], tokens_in=500, tokens_out=5)
    return Reply(tool_calls=[{"id": "c1", "name": "edit", "arguments": edit}], tokens_in=500, tokens_out=40)


def test_teacher_selfplay_records_each_episode_once_under_the_selfplay_key(sample_repo, redis_conn):
    with FakeUpstream() as up:
        up.fallback = stub_model
        endpoint = LLMEndpoint.objects.create(name="stub", protocol="openai_chat", base_url=up.url, model="stub-model",
                                              api_key="sk-stub-key-123")
        Teacher.objects.create(name="stub", endpoint=endpoint, harness="builtin", provider="fake", model="stub-model",
                               terms_allow_training=True)
        sp = selfplay.start(sample_repo, "teacher:stub", band=(0.2, 0.8), rounds=1, bugs_per_round=2,
                            attempts_per_bug=2, seed=5, operators=["flip_comparison", "off_by_one"], sizes=(1,),
                            sync=True)
    assert sp.status == SelfPlay.Status.DONE, sp.error
    [report] = sp.rounds
    valid = [row for row in report["rates"] if row["valid"]]
    assert valid, report
    episodes = Episode.objects.filter(solve_batch__selection__selfplay=sp.pk)
    assert episodes.count() == 2 * len(valid)
    assert set(episodes.values_list("solve_batch__selection__round", flat=True)) == {1}
    for ep in episodes:
        assert ep.status in ("solved", "unsolved"), (ep.error, ep.grading.get("reason"))
        assert ep.reward == (1.0 if solves(ep) else 0.0), (ep.pk, ep.attempt, ep.grading.get("reason"))
    # one row per graded episode, under the self-play key; none as "episode:<pk>"
    rows = SolveAttempt.objects.filter(bug__in=episodes.values("bug"))
    assert rows.count() == episodes.count()
    assert not rows.filter(key__startswith="episode:").exists()
    assert set(rows.values_list("source", "solver")) == {("selfplay", "teacher:stub")}
    assert sorted(rows.values_list("key", "reward")) == sorted(
        (f"selfplay:{sp.pk}:1:{ep.bug_id}:{ep.attempt}", ep.reward) for ep in episodes)
    in_band = 0
    for row in valid:
        bug = Bug.objects.get(pk=row["bug"])
        expected = 2 if bug.pk % 2 == 0 else 1
        assert (row["attempts"], row["successes"]) == (2, expected)
        assert (bug.solve_attempts, bug.solve_successes, bug.solve_rate) == (2, expected, expected / 2)
        assert row["in_band"] == (expected == 1)
        in_band += expected == 1
    assert report["in_band"] == in_band and report["valid"] == len(valid)
    assert report["hit_rate"] == in_band / len(valid)
    print(f"teacher self-play: {len(valid)} valid, {episodes.count()} episodes, hit rate {report['hit_rate']}")
    # every model call went through the gateway with the real key, never the agent's token
    assert up.requests and all(r.headers["authorization"] == "Bearer sk-stub-key-123" for r in up.requests)
