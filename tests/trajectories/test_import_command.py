"""manage.py import_episodes: files → Episode rows, per-file errors without losing the others."""
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from episodes.models import AuditEvent, Bug, Episode, Repository, Teacher

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).with_name("fixtures")


@pytest.fixture
def bug():
    repo = Repository.objects.create(name="shop", source="/nowhere", pinned_commit="a" * 40)
    return Bug.objects.create(repository=repo, base_commit="a" * 40, patch="--- a/x\n+++ b/x\n", verifier="v")


def run(*args):
    out, err = StringIO(), StringIO()
    try:
        call_command("import_episodes", *map(str, args), stdout=out, stderr=err)
        failure = None
    except CommandError as exc:
        failure = str(exc)
    return out.getvalue(), err.getvalue(), failure


def test_imports_good_files_and_reports_the_bad_one(bug, tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"type": "user", "uuid": "u1", "message": {"role": "user", "content": "hi"}}\n{not json\n')
    missing = tmp_path / "missing.jsonl"
    out, err, failure = run("--format", "claude_code", "--teacher", "cc-logs", "--bug", bug.pk,
                            FIXTURES / "claude_code_session.jsonl", broken, missing, FIXTURES / "claude_code_branched.jsonl")
    assert f"{broken} line 2: not valid JSON" in err
    assert str(missing) in err
    assert failure == "2 of 4 file(s) could not be imported (see above)"
    assert "summary: 2 of 4 file(s) imported, 2 failed" in out
    teacher = Teacher.objects.get(name="cc-logs")
    assert teacher.harness == "claude_code" and teacher.terms_allow_training is None
    assert "terms allow training use is unknown" in out
    episodes = list(Episode.objects.filter(teacher=teacher).order_by("id"))
    assert len(episodes) == 2
    real = episodes[0]
    assert real.bug == bug and real.status == "unsolved" and real.reward is None and real.exit_reason == "finished"
    assert [m["role"] for m in real.trajectory["messages"]][:3] == ["system", "user", "assistant"]
    assert len(real.agent_events) == len((FIXTURES / "claude_code_session.jsonl").read_text().splitlines())
    assert real.steps == 4 and real.tokens_out > 0 and real.cost_usd > 0 and real.started_at is not None
    audit = AuditEvent.objects.get(action="import_episode", target_id=str(real.pk))
    assert audit.after["format"] == "claude_code" and audit.after["source"].endswith("claude_code_session.jsonl")


@pytest.mark.sqlite
def test_mini_swe_agent_submission_becomes_the_final_patch(bug):
    out, err, failure = run("--format", "mini_swe_agent", "--teacher", "mini", "--bug", bug.pk, FIXTURES / "mini_swe_agent.traj.json")
    assert failure is None, err
    episode = Episode.objects.get(teacher__name="mini")
    assert episode.final_patch.startswith("diff --git a/shipping.py")
    assert episode.exit_reason == "submitted" and str(episode.cost_usd) == "0.012300"
    assert Teacher.objects.get(name="mini").harness == "imported"


def test_without_bug_it_only_checks(db):
    out, err, failure = run("--format", "codex", "--teacher", "codex-logs", FIXTURES / "codex_rollout.jsonl")
    assert failure is None, err
    assert "(not stored)" in out and "summary: 1 of 1 file(s) converted" in out
    assert not Episode.objects.exists() and not Teacher.objects.exists()


def test_unknown_bug_is_refused(db):
    out, err, failure = run("--format", "codex", "--teacher", "t", "--bug", 999, FIXTURES / "codex_rollout.jsonl")
    assert failure == "no such bug: 999"


def test_a_file_is_imported_once_unless_asked_again(bug):
    args = ("--format", "codex", "--teacher", "codex-logs", "--bug", bug.pk, FIXTURES / "codex_rollout.jsonl")
    run(*args)
    out, err, failure = run(*args)
    first = Episode.objects.get()
    assert failure is None and f"already imported as episode {first.pk} (skipped" in out
    run(*args, "--again")
    assert Episode.objects.count() == 2


def test_grade_runs_the_submission_through_the_reward(sample_repo, tmp_path):
    """A mini-swe-agent submission that undoes the sample shipping bug earns reward True in
    the real sandbox; one that leaves it in earns False."""
    import json

    from episodes.engine.repos.samples import SAMPLE_BUGS, sample_patch
    from episodes.engine.solve.reward import file_diff
    from episodes.sandboxes import repo_spec, workspaces

    sample = SAMPLE_BUGS[0]
    spec = repo_spec(sample_repo)
    bug = Bug.objects.create(repository=sample_repo, base_commit=sample_repo.pinned_commit, verifier=sample.verifier,
                             patch=sample_patch(workspaces(), spec.mirror, spec.commit, sample), status="approved")
    with workspaces().checkout(spec.mirror, spec.commit, patch=bug.patch) as ws:
        buggy = (ws / sample.path).read_text()
    # diffs against the buggy code, as the agent's `git diff` would show them
    good = file_diff(sample.path, buggy, buggy.replace(sample.new, sample.old, 1))
    wrong = file_diff(sample.path, buggy, buggy + "\n# looked at it\n")
    files = []
    for name, patch in (("good", good), ("wrong", wrong)):
        data = json.loads((FIXTURES / "mini_swe_agent.traj.json").read_text())
        data["info"]["submission"] = patch
        files.append(tmp_path / f"{name}.traj.json")
        files[-1].write_text(json.dumps(data))
    out, err, failure = run("--format", "mini_swe_agent", "--teacher", "mini", "--bug", bug.pk, "--grade", *files)
    assert failure is None, err
    good_ep, wrong_ep = Episode.objects.order_by("id")
    assert (good_ep.reward, good_ep.status) == (1.0, "solved"), good_ep.grading
    assert (wrong_ep.reward, wrong_ep.status) == (0.0, "unsolved")
    assert "the verifier" in good_ep.grading["reason"] and good_ep.grading["runs"][0]["outcome"] == "passed"
    assert "reward True" in out and "reward False" in out


def test_grade_needs_a_bug(db):
    out, err, failure = run("--format", "mini_swe_agent", "--teacher", "t", "--grade", FIXTURES / "mini_swe_agent.traj.json")
    assert failure == "--grade needs --bug: a patch is graded against its bug"


def test_folders_are_searched_for_the_format(db, tmp_path):
    import shutil

    sessions = tmp_path / "projects" / "-work-shop"
    sessions.mkdir(parents=True)
    shutil.copy(FIXTURES / "claude_code_branched.jsonl", sessions / "a.jsonl")
    shutil.copy(FIXTURES / "claude_code_session.jsonl", sessions / "b.jsonl")
    (sessions / "notes.txt").write_text("not a log")
    out, err, failure = run("--format", "claude_code", "--teacher", "cc", tmp_path / "projects")
    assert failure is None, err
    assert "[1/2]" in out and "a.jsonl" in out and "b.jsonl" in out and "summary: 2 of 2 file(s) converted" in out
    out, err, failure = run("--format", "codex", "--teacher", "cc", tmp_path / "projects")
    assert failure == "no rollout-*.jsonl file in the given folder(s)"
